package redis

import (
	"context"
	"fmt"
	"time"
)

// AcquireLease grants name to owner when free or expired, or extends it for its owner.
func (c *Coordinator) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, int64, error) {
	ms, err := millis("acquire lease", ttl)
	if err != nil {
		return false, 0, err
	}
	key := c.leaseKey(name)
	ctx, cancel := c.op(ctx)
	defer cancel()
	res, err := leaseScript.Run(ctx, c.client, []string{key, key + fenceSuffix}, owner, ms).Int64Slice()
	if err != nil {
		return false, 0, unavailable("acquire lease", err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("redis acquire lease: script answered %d values, want 2", len(res))
	}
	return res[0] == 1, res[1], nil
}

// ReleaseLease frees name when owner holds it.
func (c *Coordinator) ReleaseLease(ctx context.Context, name, owner string) error {
	ctx, cancel := c.op(ctx)
	defer cancel()
	if err := deleteIfEqualScript.Run(ctx, c.client, []string{c.leaseKey(name)}, owner).Err(); err != nil {
		return unavailable("release lease", err)
	}
	return nil
}
