package redis

import (
	"context"
	"errors"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// StickyGet returns the account bound to key, or 0.
func (c *Coordinator) StickyGet(ctx context.Context, key string) (int64, error) {
	return c.getInt(ctx, "sticky get", c.stickyKey(key))
}

// StickySet binds key to accountID for ttl.
func (c *Coordinator) StickySet(ctx context.Context, key string, accountID int64, ttl time.Duration) error {
	if _, err := millis("sticky set", ttl); err != nil {
		return err
	}
	ctx, cancel := c.op(ctx)
	defer cancel()
	if err := c.client.Set(ctx, c.stickyKey(key), accountID, ttl).Err(); err != nil {
		return unavailable("sticky set", err)
	}
	return nil
}

// StickyDelete removes the binding of key if it is still accountID.
func (c *Coordinator) StickyDelete(ctx context.Context, key string, accountID int64) error {
	ctx, cancel := c.op(ctx)
	defer cancel()
	id := strconv.FormatInt(accountID, 10)
	if err := deleteIfEqualScript.Run(ctx, c.client, []string{c.stickyKey(key)}, id).Err(); err != nil {
		return unavailable("sticky delete", err)
	}
	return nil
}

// Incr adds delta to key; a key without expiry gets ttl as its fixed window.
func (c *Coordinator) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	var ms int64
	if ttl > 0 {
		ms, _ = millis("incr", ttl)
	}
	ctx, cancel := c.op(ctx)
	defer cancel()
	v, err := incrScript.Run(ctx, c.client, []string{c.counterKey(key)}, delta, ms).Int64()
	if err != nil {
		return 0, unavailable("incr", err)
	}
	return v, nil
}

// Get returns the value of key, 0 when missing or expired.
func (c *Coordinator) Get(ctx context.Context, key string) (int64, error) {
	return c.getInt(ctx, "counter get", c.counterKey(key))
}

// getInt reads an integer string key; a missing key is 0.
func (c *Coordinator) getInt(ctx context.Context, op, key string) (int64, error) {
	ctx, cancel := c.op(ctx)
	defer cancel()
	v, err := c.client.Get(ctx, key).Int64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable(op, err)
	}
	return v, nil
}
