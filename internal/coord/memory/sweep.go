package memory

import (
	"context"
	"time"
)

// SweepLeases forgets the fences of free leases older than idle, and the lapsed leases.
func (c *Coordinator) SweepLeases(ctx context.Context, idle time.Duration) (int, error) {
	if err := checkTTL("sweep leases", idle); err != nil {
		return 0, err
	}
	if err := c.check(ctx); err != nil {
		return 0, err
	}
	now := c.now()
	oldest := now.Add(-idle).UnixMilli()
	l := &c.leases
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for name, fence := range l.fences {
		if cur, held := l.m[name]; held && !expired(cur.expires, now) {
			continue
		}
		delete(l.m, name)
		if fence < oldest {
			delete(l.fences, name)
			n++
		}
	}
	return n, nil
}
