package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// AcquireSlots takes one slot in every limited set for holder, or none, in one script.
func (c *Coordinator) AcquireSlots(ctx context.Context, holder string, ttl time.Duration, reqs ...coord.SlotReq) (bool, int, error) {
	ms, err := millis("acquire slots", ttl)
	if err != nil {
		return false, -1, err
	}
	keys := make([]string, 0, len(reqs))
	args := make([]any, 2, 2+len(reqs))
	args[0], args[1] = holder, ms
	index := make([]int, 0, len(reqs)) // position in keys -> position in reqs
	for i, r := range reqs {
		if r.Limit <= 0 {
			continue // unlimited: always granted, nothing stored
		}
		keys = append(keys, c.slotKey(r.Key))
		args = append(args, r.Limit)
		index = append(index, i)
	}
	if len(keys) == 0 {
		return true, -1, nil
	}
	ctx, cancel := c.op(ctx)
	defer cancel()
	full, err := acquireScript.Run(ctx, c.client, keys, args...).Int()
	if err != nil {
		return false, -1, unavailable("acquire slots", err)
	}
	if full == 0 {
		return true, -1, nil
	}
	if full < 1 || full > len(index) {
		return false, -1, fmt.Errorf("redis acquire slots: script answered set %d of %d", full, len(index))
	}
	return false, index[full-1], nil
}

// ReleaseSlots removes holder from each set in one script.
func (c *Coordinator) ReleaseSlots(ctx context.Context, holder string, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	rkeys := make([]string, len(keys))
	for i, k := range keys {
		rkeys[i] = c.slotKey(k)
	}
	ctx, cancel := c.op(ctx)
	defer cancel()
	if err := c.hot.run(ctx, releaseScript, rkeys, holder).Err(); err != nil {
		return unavailable("release slots", err)
	}
	return nil
}

// ReleaseAndBind runs the release and, when bind.Key is set, the binding in one script:
// one round trip, batched with other requests' like ReleaseSlots.
func (c *Coordinator) ReleaseAndBind(ctx context.Context, holder string, keys []string, bind coord.Binding) error {
	if bind.Key == "" {
		return c.ReleaseSlots(ctx, holder, keys...)
	}
	ms, err := millis("release and bind", bind.TTL)
	if err != nil {
		return err
	}
	rkeys := make([]string, len(keys)+1)
	for i, k := range keys {
		rkeys[i] = c.slotKey(k)
	}
	rkeys[len(keys)] = c.stickyKey(bind.Key)
	ctx, cancel := c.op(ctx)
	defer cancel()
	if err := c.hot.run(ctx, releaseBindScript, rkeys, holder, strconv.FormatInt(bind.AccountID, 10), ms).Err(); err != nil {
		return unavailable("release and bind", err)
	}
	return nil
}

// RefreshSlots reads the epoch and extends every live (key, holder), or registers them all
// again under a new epoch, in one script.
func (c *Coordinator) RefreshSlots(ctx context.Context, ttl time.Duration, epoch string, held []coord.Held) (string, error) {
	ms, err := millis("refresh slots", ttl)
	if err != nil {
		return "", err
	}
	keys := make([]string, len(held), len(held)+2)
	args := make([]any, 4+len(held), 4+len(held)+8)
	args[0], args[1], args[2], args[3] = ms, epoch, c.node, len(held)
	for i, h := range held {
		keys[i] = c.slotKey(h.Key)
		args[4+i] = h.Holder
	}
	keys = append(keys, c.epochKey(), c.membersKey())
	return c.runEpoch(ctx, "refresh slots", refreshScript, keys, c.withMembers(args))
}

// PollEpoch reads the epoch, extends it and this node's membership, and hands the server the
// members this node knows, in one small script.
func (c *Coordinator) PollEpoch(ctx context.Context) (string, error) {
	return c.runEpoch(ctx, "poll epoch", pollScript, []string{c.epochKey(), c.membersKey()}, c.withMembers([]any{c.node}))
}

// SlotCount counts the holders of key alive by Redis's clock.
func (c *Coordinator) SlotCount(ctx context.Context, key string) (int, error) {
	ctx, cancel := c.op(ctx)
	defer cancel()
	n, err := countScript.Run(ctx, c.client, []string{c.slotKey(key)}).Int()
	if err != nil {
		return 0, unavailable("slot count", err)
	}
	return n, nil
}
