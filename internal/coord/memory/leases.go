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
	fences map[string]int64 // last fence granted per name; never shrinks
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
	// A fence never falls below the wall clock in ms, so it keeps growing across a restart
	// of the process that forgot the old ones, like the Redis backend after a data loss.
	fence := max(l.fences[name]+1, now.UnixMilli())
	l.fences[name] = fence
	l.m[name] = lease{owner: owner, expires: now.Add(ttl)}
	return true, fence, nil
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
