package memory

import (
	"context"
	"slices"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// AcquireAccount reads the session's binding, grants the first account with room (the
// bound one first) with the base slots, and binds or refreshes the session, under the slot
// and sticky locks together (always taken in that order).
func (c *Coordinator) AcquireAccount(ctx context.Context, holder string, ttl time.Duration, req coord.AccountReq) (coord.AccountGrant, error) {
	none := coord.AccountGrant{Index: -1, BaseFull: -1}
	if err := checkTTL("acquire account", ttl); err != nil {
		return none, err
	}
	if req.Session != "" {
		if err := checkTTL("acquire account: session", req.SessionTTL); err != nil {
			return none, err
		}
	}
	if err := c.check(ctx); err != nil {
		return none, err
	}
	now := c.now()
	s := &c.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &c.sticky
	st.mu.Lock()
	defer st.mu.Unlock()
	s.sweep(now)
	if wait := s.opens.Sub(now); wait > 0 {
		return coord.AccountGrant{Index: -1, BaseFull: -1, Epoch: s.epoch, Recovering: wait}, nil
	}

	var bound int64
	if req.Session != "" {
		e, _ := st.get(req.Session, now)
		bound = e.value
	}
	grant := coord.AccountGrant{Index: -1, BaseFull: -1, Bound: bound, Epoch: s.epoch}
	for i, r := range req.Base {
		if !s.room(r, holder, now) {
			grant.BaseFull = i
			return grant, nil
		}
	}
	roomy := func(a coord.AccountSlot) bool { return s.room(a.Slot, holder, now) }
	first := -1
	if bound != 0 {
		first = slices.IndexFunc(req.Accounts, func(a coord.AccountSlot) bool { return a.ID == bound })
	}
	chosen := first
	if first < 0 || !roomy(req.Accounts[first]) {
		chosen = slices.IndexFunc(req.Accounts, roomy)
	}
	if chosen < 0 {
		return grant, nil
	}
	exp := now.Add(ttl)
	for _, r := range req.Base {
		s.take(r, holder, exp)
	}
	won := req.Accounts[chosen]
	s.take(won.Slot, holder, exp)
	grant.Index = chosen

	// Refresh the binding that was used, bind a session that had none, rebind one whose
	// account can no longer serve; a bound account that is only full, or kept, stays bound.
	rebind := first < 0 && !slices.Contains(req.Keep, bound)
	if req.Session != "" && (bound == won.ID || bound == 0 || rebind) {
		st.put(req.Session, entry[int64]{value: won.ID, expires: now.Add(req.SessionTTL)}, now)
	}
	return grant, nil
}
