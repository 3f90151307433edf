package memory

import (
	"context"
	"sync"
	"time"
)

type lease struct {
	owner   string
	expires time.Time
}

type leaseTable struct {
	mu     sync.Mutex
	m      map[string]lease
	fences map[string]int64 // never shrinks: a fence must grow across the process lifetime
}

// AcquireLease grants or extends name for owner.
func (c *Coordinator) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, int64, error) {
	if err := checkTTL("acquire lease", ttl); err != nil {
		return false, 0, err
	}
	if err := c.check(ctx); err != nil {
		return false, 0, err
	}
	now := c.now()
	l := &c.leases
	l.mu.Lock()
	defer l.mu.Unlock()
	cur, held := l.m[name]
	if held && !expired(cur.expires, now) {
		if cur.owner != owner {
			return false, 0, nil
		}
		l.m[name] = lease{owner: owner, expires: now.Add(ttl)}
		return true, l.fences[name], nil
	}
	l.fences[name]++
	l.m[name] = lease{owner: owner, expires: now.Add(ttl)}
	return true, l.fences[name], nil
}

// ReleaseLease frees name when owner holds it.
func (c *Coordinator) ReleaseLease(ctx context.Context, name, owner string) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	l := &c.leases
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.m[name]; ok && cur.owner == owner {
		delete(l.m, name)
	}
	return nil
}
