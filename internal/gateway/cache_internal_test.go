package gateway

import (
	"context"
	"errors"
	"testing"
	"time"
)

var errDown = errors.New("database down")

// TestCacheKeepsLastKnownValue: an entry past its TTL or marked stale answers with its last
// known value while the store fails, and is read again fallbackRetry later; a dropped entry
// has nothing to answer with.
func TestCacheKeepsLastKnownValue(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newCache[string, int](time.Second, 0, func() time.Time { return now })
	ctx := context.Background()
	ok := func(v int) func(context.Context) (int, error) {
		return func(context.Context) (int, error) { return v, nil }
	}
	fail := func(context.Context) (int, error) { return 0, errDown }

	if v, err := c.get(ctx, "k", ok(1)); v != 1 || err != nil {
		t.Fatalf("first load: %d, %v", v, err)
	}
	now = now.Add(2 * time.Second) // past the TTL
	if v, err := c.get(ctx, "k", fail); v != 1 || err != nil {
		t.Fatalf("past the TTL with the store down: %d, %v; want the last known 1", v, err)
	}
	if v, err := c.get(ctx, "k", ok(2)); v != 1 || err != nil {
		t.Fatalf("within fallbackRetry: %d, %v; want the last known 1 without a read", v, err)
	}
	now = now.Add(fallbackRetry)
	if v, err := c.get(ctx, "k", ok(2)); v != 2 || err != nil {
		t.Fatalf("after fallbackRetry with the store back: %d, %v; want 2", v, err)
	}

	c.stale(func(_ string, v int) bool { return v == 2 })
	if v, err := c.get(ctx, "k", fail); v != 2 || err != nil {
		t.Fatalf("marked stale, the store down: %d, %v; want the last known 2", v, err)
	}

	c.drop(func(_ string, v int, _ bool) bool { return v == 2 })
	if _, err := c.get(ctx, "k", fail); !errors.Is(err, errDown) {
		t.Fatalf("dropped, the store down: %v; want the store's error", err)
	}
}

// TestCacheStoresLoadsRacingChanges: a change that keeps entries (stale, replace) while a
// load is in flight does not stop the load from being stored; a load it matches is stored
// due for a read. A drop does stop it.
func TestCacheStoresLoadsRacingChanges(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newCache[string, int](time.Minute, 0, func() time.Time { return now })
	ctx := context.Background()
	racing := func(v int, change func()) func(context.Context) (int, error) {
		return func(context.Context) (int, error) { change(); return v, nil }
	}
	reads := 0
	count := func(v int) func(context.Context) (int, error) {
		return func(context.Context) (int, error) { reads++; return v, nil }
	}

	// Another value's change: stored fresh.
	c.get(ctx, "a", racing(1, func() { c.stale(func(_ string, v int) bool { return v == 99 }) }))
	if v, _ := c.get(ctx, "a", count(5)); v != 1 || reads != 0 {
		t.Errorf("a load racing an unrelated change: got %d after %d reads; want it stored (1, no read)", v, reads)
	}
	// Its own change: stored, but read again next time.
	c.get(ctx, "b", racing(2, func() { c.stale(func(_ string, v int) bool { return v == 2 }) }))
	if v, _ := c.get(ctx, "b", count(3)); v != 3 || reads != 1 {
		t.Errorf("a load racing its own change: got %d after %d reads; want a fresh read (3, 1)", v, reads)
	}
	c.get(ctx, "c", racing(4, func() { c.replace(func(_ string, v int) (int, bool) { return v - 1, v == 4 }) }))
	if v, err := c.get(ctx, "c", func(context.Context) (int, error) { return 0, errDown }); v != 4 || err != nil {
		t.Errorf("a load racing its own replace, the store down: %d, %v; want it kept as the last known 4", v, err)
	}
	// A drop: not stored.
	reads = 0
	c.get(ctx, "d", racing(6, func() { c.drop(nil) }))
	if v, _ := c.get(ctx, "d", count(7)); v != 7 || reads != 1 {
		t.Errorf("a load racing a drop: got %d after %d reads; want a fresh read (7, 1)", v, reads)
	}

	// A load in flight keeps the marks made since it began, and no older ones: with loads
	// always in flight (steady traffic), the marks do not pile up.
	inFlight := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			c.mu.Lock()
			n := len(c.flights)
			c.mu.Unlock()
			if n == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d loads in flight, want %d", n, want)
			}
		}
	}
	slow := func(k string, release chan struct{}) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.get(ctx, k, func(context.Context) (int, error) { <-release; return 8, nil })
		}()
		return done
	}
	changes := func(n int) {
		for i := range n {
			c.stale(func(_ string, v int) bool { return v == 100+i })
		}
	}
	marks := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.marks)
	}
	changes(3) // nothing in flight: not kept
	release1, release2 := make(chan struct{}), make(chan struct{})
	done1 := slow("slow1", release1)
	inFlight(1)
	changes(10)
	done2 := slow("slow2", release2)
	inFlight(2)
	changes(5)
	if n := marks(); n != 15 {
		t.Errorf("%d marks kept, want the 15 made since the first load in flight began", n)
	}
	close(release1)
	<-done1
	if n := marks(); n != 5 {
		t.Errorf("%d marks kept once the first load ended, want the 5 made since the second began", n)
	}
	close(release2)
	<-done2
	if n := marks(); n != 0 {
		t.Errorf("%d marks kept with no load in flight", n)
	}
}
