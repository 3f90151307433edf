package memory

import (
	"context"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// StickyGet returns the account bound to key, or 0.
func (c *Coordinator) StickyGet(ctx context.Context, key string) (int64, error) {
	return c.read(ctx, &c.sticky, key)
}

// StickySet binds key to accountID for ttl, replacing any binding.
func (c *Coordinator) StickySet(ctx context.Context, key string, accountID int64, ttl time.Duration) error {
	if err := checkTTL("sticky set", ttl); err != nil {
		return err
	}
	if err := c.check(ctx); err != nil {
		return err
	}
	now := c.now()
	s := &c.sticky
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(key, entry[int64]{value: accountID, expires: now.Add(ttl)}, now)
	return nil
}

// StickyDelete removes the binding of key if it is still accountID.
func (c *Coordinator) StickyDelete(ctx context.Context, key string, accountID int64) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	now := c.now()
	s := &c.sticky
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.get(key, now); ok && e.value == accountID {
		delete(s.m, key)
	}
	return nil
}

// Incr adds delta to key. A new key, or one kept without expiry, gets ttl as its fixed
// window; a running window is never extended.
func (c *Coordinator) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	if err := c.check(ctx); err != nil {
		return 0, err
	}
	now := c.now()
	t := &c.counters
	t.mu.Lock()
	defer t.mu.Unlock()
	e, _ := t.get(key, now)
	e.value += delta
	if ttl > 0 && e.expires.IsZero() {
		e.expires = now.Add(ttl)
	}
	t.put(key, e, now)
	return e.value, nil
}

// Get returns the value of key, 0 when missing or expired.
func (c *Coordinator) Get(ctx context.Context, key string) (int64, error) {
	return c.read(ctx, &c.counters, key)
}

// read returns the live value of key in m, 0 when missing or expired.
func (c *Coordinator) read(ctx context.Context, m *expiring[int64], key string) (int64, error) {
	if err := c.check(ctx); err != nil {
		return 0, err
	}
	now := c.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e, _ := m.get(key, now)
	return e.value, nil
}

// TakeRate checks and counts every window under the counters' lock: all or nothing.
func (c *Coordinator) TakeRate(ctx context.Context, reqs ...coord.RateReq) (bool, time.Duration, error) {
	if err := c.check(ctx); err != nil {
		return false, 0, err
	}
	now := c.now()
	t := &c.rates
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range reqs {
		if r.Limit <= 0 {
			continue
		}
		e, ok := t.get(r.Key, now)
		if e.value+r.Cost > r.Limit || r.Cost == 0 && e.value >= r.Limit {
			if !ok || e.expires.IsZero() {
				return false, r.Window, nil
			}
			return false, e.expires.Sub(now), nil
		}
	}
	for _, r := range reqs {
		if r.Cost == 0 {
			continue
		}
		e, _ := t.get(r.Key, now)
		e.value += r.Cost
		if e.expires.IsZero() {
			e.expires = now.Add(r.Window)
		}
		t.put(r.Key, e, now)
	}
	return true, 0, nil
}
