package memory

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
)

type slotTable struct {
	mu        sync.Mutex
	sets      map[string]map[string]time.Time // key -> holder -> expiry
	lastSweep time.Time
	// epoch names the current state (coord.Slots); it changes at every Reset, and
	// AcquireAccount grants nothing before opens. began is when it began.
	epoch string
	gen   int
	began time.Time
	opens time.Time
}

// newEpoch begins the next epoch at now, open at opens. The caller holds mu.
func (s *slotTable) newEpoch(now, opens time.Time) {
	s.gen++
	s.epoch = "m" + strconv.Itoa(s.gen)
	s.began, s.opens = now, opens
}

// Reset forgets every slot, binding, counter and lease, as a Redis restart without its data
// would, and begins a new epoch whose recovery window lasts until the node registers its
// slots again (one process is one node: its registration is every node's), at least
// coord.MinRecoveryWindow and at most coord.RecoveryWindow. Tests use it to check what a loss
// of the coordination state does.
func (c *Coordinator) Reset() {
	now := c.now()
	s := &c.slots
	s.mu.Lock()
	s.sets = make(map[string]map[string]time.Time)
	s.newEpoch(now, now.Add(coord.RecoveryWindow))
	s.mu.Unlock()
	for _, e := range []*expiring[int64]{&c.sticky, &c.counters} {
		e.mu.Lock()
		e.m = nil
		e.mu.Unlock()
	}
	c.leases.mu.Lock()
	c.leases.m = make(map[string]lease) // fences stay: they must keep growing
	c.leases.mu.Unlock()
}

// live returns the set for key with expired holders removed, or nil when empty.
func (s *slotTable) live(key string, now time.Time) map[string]time.Time {
	set := s.sets[key]
	for h, exp := range set {
		if expired(exp, now) {
			delete(set, h)
		}
	}
	if set != nil && len(set) == 0 {
		delete(s.sets, key)
		return nil
	}
	return set
}

func (s *slotTable) sweep(now time.Time) {
	if now.Sub(s.lastSweep) < sweepEvery {
		return
	}
	s.lastSweep = now
	for key := range s.sets {
		s.live(key, now)
	}
}

// AcquireSlots takes one slot in every limited set for holder, or none.
func (c *Coordinator) AcquireSlots(ctx context.Context, holder string, ttl time.Duration, reqs ...coord.SlotReq) (bool, int, error) {
	if err := checkTTL("acquire slots", ttl); err != nil {
		return false, -1, err
	}
	if err := c.check(ctx); err != nil {
		return false, -1, err
	}
	now := c.now()
	s := &c.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	for i, r := range reqs {
		if !s.room(r, holder, now) {
			return false, i, nil
		}
	}
	exp := now.Add(ttl)
	for _, r := range reqs {
		s.take(r, holder, exp)
	}
	return true, -1, nil
}

// room reports whether holder may have a slot of r: it has one already, the set has fewer
// live holders than the limit, or there is no limit. The caller holds mu.
func (s *slotTable) room(r coord.SlotReq, holder string, now time.Time) bool {
	if r.Limit <= 0 {
		return true
	}
	set := s.live(r.Key, now)
	_, mine := set[holder]
	return mine || len(set) < r.Limit
}

// take gives holder a slot of r until exp; an unlimited set stores nothing. The caller
// holds mu.
func (s *slotTable) take(r coord.SlotReq, holder string, exp time.Time) {
	if r.Limit <= 0 {
		return
	}
	set := s.sets[r.Key]
	if set == nil {
		set = make(map[string]time.Time)
		s.sets[r.Key] = set
	}
	set[holder] = exp
}

// ReleaseSlots removes holder from each set.
func (c *Coordinator) ReleaseSlots(ctx context.Context, holder string, keys ...string) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	s := &c.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range keys {
		set := s.sets[key]
		delete(set, holder)
		if set != nil && len(set) == 0 {
			delete(s.sets, key)
		}
	}
	return nil
}

// ReleaseAndBind releases holder's slots in keys, then binds bind.Key when set.
func (c *Coordinator) ReleaseAndBind(ctx context.Context, holder string, keys []string, bind coord.Binding) error {
	if bind.Key != "" {
		if err := checkTTL("release and bind", bind.TTL); err != nil {
			return err
		}
	}
	if err := c.ReleaseSlots(ctx, holder, keys...); err != nil {
		return err
	}
	if bind.Key == "" {
		return nil
	}
	return c.StickySet(ctx, bind.Key, bind.AccountID, bind.TTL)
}

// RefreshSlots extends each live (key, holder); an expired holder stays gone, because its
// place may already be taken. Under another epoch than the caller's, it registers every pair
// again, and the recovery window closes as soon as it has lasted coord.MinRecoveryWindow.
func (c *Coordinator) RefreshSlots(ctx context.Context, ttl time.Duration, epoch string, held []coord.Held) (string, error) {
	if err := checkTTL("refresh slots", ttl); err != nil {
		return "", err
	}
	if err := c.check(ctx); err != nil {
		return "", err
	}
	now := c.now()
	exp := now.Add(ttl)
	s := &c.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	again := epoch != s.epoch
	if again && s.opens.After(now) {
		s.opens = latest(s.began.Add(coord.MinRecoveryWindow), now)
	}
	for _, h := range held {
		set := s.live(h.Key, now)
		if _, ok := set[h.Holder]; ok || again {
			s.take(coord.SlotReq{Key: h.Key, Limit: 1}, h.Holder, exp)
		}
	}
	return s.epoch, nil
}

// PollEpoch returns the current epoch.
func (c *Coordinator) PollEpoch(ctx context.Context) (string, error) {
	if err := c.check(ctx); err != nil {
		return "", err
	}
	s := &c.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch, nil
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// SlotCount counts the live holders of key.
func (c *Coordinator) SlotCount(ctx context.Context, key string) (int, error) {
	if err := c.check(ctx); err != nil {
		return 0, err
	}
	now := c.now()
	s := &c.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live(key, now)), nil
}
