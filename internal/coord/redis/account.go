package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// AcquireAccount reads the binding, chooses, takes the slots and binds, in one script.
func (c *Coordinator) AcquireAccount(ctx context.Context, holder string, ttl time.Duration, req coord.AccountReq) (coord.AccountGrant, error) {
	none := coord.AccountGrant{Index: -1, BaseFull: -1}
	ms, err := millis("acquire account", ttl)
	if err != nil {
		return none, err
	}
	var sessionMS int64
	if req.Session != "" {
		if sessionMS, err = millis("acquire account: session", req.SessionTTL); err != nil {
			return none, err
		}
	}
	keys := make([]string, 0, len(req.Base)+len(req.Accounts)+3)
	args := make([]any, 6, 7+len(req.Base)+3*len(req.Accounts)+len(req.Keep))
	baseIndex := make([]int, 0, len(req.Base)) // position in keys -> position in req.Base
	for i, r := range req.Base {
		if r.Limit <= 0 {
			continue // unlimited: never full, nothing stored
		}
		keys = append(keys, c.slotKey(r.Key))
		args = append(args, r.Limit)
		baseIndex = append(baseIndex, i)
	}
	for _, a := range req.Accounts {
		keyIndex := 0
		if a.Slot.Limit > 0 {
			keys = append(keys, c.slotKey(a.Slot.Key))
			keyIndex = len(keys) // Lua's KEYS are 1-based
		}
		args = append(args, strconv.FormatInt(a.ID, 10), a.Slot.Limit, keyIndex)
	}
	for _, id := range req.Keep {
		args = append(args, strconv.FormatInt(id, 10))
	}
	if req.Session != "" {
		keys = append(keys, c.stickyKey(req.Session))
	}
	keys = append(keys, c.epochKey(), c.membersKey())
	args = append(args, c.node)
	args[0], args[1], args[2] = holder, ms, sessionMS
	args[3], args[4], args[5] = len(baseIndex), len(req.Accounts), len(req.Keep)

	c.takesSlots.Store(true)
	ctx, cancel := c.op(ctx)
	defer cancel()
	out, err := c.hot.run(ctx, accountScript, keys, args...).Slice()
	if err != nil {
		return none, unavailable("acquire account", err)
	}
	chosen, baseFull, bound, err := parseGrant(out)
	if err != nil {
		return none, err
	}
	epoch, wait, err := parseEpoch(out[3:])
	if err != nil {
		return none, err
	}
	grant := coord.AccountGrant{Index: -1, BaseFull: -1, Bound: bound, Epoch: epoch, Recovering: wait}
	switch {
	case baseFull > 0 && baseFull <= len(baseIndex):
		grant.BaseFull = baseIndex[baseFull-1]
	case baseFull != 0:
		return none, fmt.Errorf("redis acquire account: script answered base set %d of %d", baseFull, len(baseIndex))
	case chosen > 0 && chosen <= len(req.Accounts):
		grant.Index = chosen - 1
	case chosen != 0:
		return none, fmt.Errorf("redis acquire account: script answered account %d of %d", chosen, len(req.Accounts))
	}
	return grant, nil
}

// parseGrant reads the script's {chosen, base full, bound, epoch, wait} answer, but for the
// epoch and wait (parseEpoch).
func parseGrant(out []any) (chosen, baseFull int, bound int64, err error) {
	if len(out) != 5 {
		return 0, 0, 0, fmt.Errorf("redis acquire account: script answered %d values, want 5", len(out))
	}
	c, ok1 := out[0].(int64)
	b, ok2 := out[1].(int64)
	text, ok3 := out[2].(string)
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, 0, fmt.Errorf("redis acquire account: unexpected answer %v", out)
	}
	if text != "" {
		if bound, err = strconv.ParseInt(text, 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("redis acquire account: binding %q is not an account id", text)
		}
	}
	return int(c), int(b), bound, nil
}

// parseEpoch reads {epoch, ms until its recovery window closes}.
func parseEpoch(out []any) (string, time.Duration, error) {
	epoch, ok1 := out[0].(string)
	wait, ok2 := out[1].(int64)
	if !ok1 || !ok2 || epoch == "" {
		return "", 0, fmt.Errorf("redis acquire account: unexpected epoch answer %v", out)
	}
	return epoch, time.Duration(max(wait, 0)) * time.Millisecond, nil
}
