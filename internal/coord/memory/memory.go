// Package memory implements coord.Coordinator inside one process, for the single-node shape
// and for tests. Every service keeps its own mutex-guarded map; entries expire lazily when
// touched, and a sweep at most once per sweepEvery drops the ones nobody touches again, so a
// long-running node does not accumulate dead sticky bindings or old counter windows.
package memory

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// sweepEvery bounds how often a write walks a whole map for expired entries: rare enough
// to cost nothing per call, often enough that dead entries do not pile up.
const sweepEvery = time.Minute

// errClosed is returned by every call after Close.
var errClosed = fmt.Errorf("memory coordinator closed: %w", coord.ErrUnavailable)

// Coordinator is the in-process coordination backend. The zero value is not usable; call New.
type Coordinator struct {
	slots    slotTable
	leases   leaseTable
	sticky   expiring[int64]
	counters expiring[int64]
	rates    expiring[int64] // TakeRate's windows
	pubsub   hub
	closed   atomic.Bool

	// now reads the clock; time.Now carries a monotonic reading, so expiry is immune to wall
	// clock jumps.
	now func() time.Time
}

var _ coord.Coordinator = (*Coordinator)(nil)

// New returns an empty coordinator.
func New() *Coordinator {
	c := &Coordinator{now: time.Now}
	c.slots.sets = make(map[string]map[string]time.Time)
	c.slots.newEpoch(time.Time{}, time.Time{}) // open at once: nothing can have run before
	c.leases.m = make(map[string]lease)
	c.leases.fences = make(map[string]int64)
	c.pubsub.subs = make(map[string]map[*subscriber]struct{})
	c.pubsub.stop = make(chan struct{})
	return c
}

// Ping answers nil until Close.
func (c *Coordinator) Ping(ctx context.Context) error {
	return c.check(ctx)
}

// Close ends every subscription (their channels close) and makes later calls fail.
func (c *Coordinator) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.pubsub.close()
	}
	return nil
}

// check fails like the Redis backend would: after Close, or when the caller's context has
// ended, so code that forgets to detach a cleanup from a finished request fails here too.
func (c *Coordinator) check(ctx context.Context) error {
	if c.closed.Load() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", coord.ErrUnavailable, err)
	}
	return nil
}

// checkTTL refuses a lifetime that would make an entry expire at once or never.
func checkTTL(what string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%s: ttl must be positive, got %v", what, ttl)
	}
	return nil
}

// expired reports whether an entry with expiry exp is dead at now. A zero exp never expires.
func expired(exp, now time.Time) bool {
	return !exp.IsZero() && !now.Before(exp)
}
