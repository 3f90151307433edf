package redis

import (
	"context"
	"fmt"
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

// RefreshSlots reads the epoch and extends every live (key, holder), or registers them all
// again under a new epoch, in one script.
func (c *Coordinator) RefreshSlots(ctx context.Context, ttl time.Duration, epoch string, held []coord.Held) (string, error) {
	ms, err := millis("refresh slots", ttl)
	if err != nil {
		return "", err
	}
	keys := make([]string, len(held), len(held)+1)
	args := make([]any, 2+len(held))
	args[0], args[1] = ms, epoch
	for i, h := range held {
		keys[i] = c.slotKey(h.Key)
		args[2+i] = h.Holder
	}
	keys = append(keys, c.epochKey())
	ctx, cancel := c.op(context.WithValue(ctx, uncounted{}, true))
	defer cancel()
	cur, err := refreshScript.Run(ctx, c.client, keys, args...).Text()
	if err != nil {
		return "", unavailable("refresh slots", err)
	}
	c.refreshed.Store(time.Now().UnixNano())
	return cur, nil
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
