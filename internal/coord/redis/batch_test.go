package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// accountReq asks for one slot of an account limited to limit.
func accountReq(limit int) coord.AccountReq {
	return coord.AccountReq{Accounts: []coord.AccountSlot{{ID: 7, Slot: coord.SlotReq{Key: "batch:acct", Limit: limit}}}}
}

// Under load the hot-path scripts share pipelines, and every call is still its own atomic
// script: 400 concurrent acquisitions of an account limited to 150 grant exactly 150, in
// fewer round trips than calls; releasing them all empties the set. After SCRIPT FLUSH (what
// a Redis restart does to the script cache) pipelined calls still succeed.
func TestBatchedCallsStayAtomic(t *testing.T) {
	r := testenv.StartRedis(t)
	counter := &CommandCounter{}
	c := mustNew(t, Options{URL: r.URL(), KeyPrefix: uniquePrefix(), Counter: counter})
	ctx := context.Background()

	for _, flush := range []bool{false, true} {
		if flush {
			if err := rawClient(t, r).ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		counter.Reset()
		const calls, limit = 400, 150
		var granted atomic.Int64
		var holders sync.Map
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range calls {
			wg.Go(func() {
				<-start
				holder := fmt.Sprintf("h%d", i)
				g, err := c.AcquireAccount(ctx, holder, time.Minute, accountReq(limit))
				if err != nil {
					t.Errorf("AcquireAccount %d: %v", i, err)
					return
				}
				if g.Index == 0 {
					granted.Add(1)
					holders.Store(holder, true)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := granted.Load(); n != limit {
			t.Fatalf("flush=%v: %d of %d concurrent calls granted a slot of an account limited to %d", flush, n, calls, limit)
		}
		if rt := counter.RoundTrips(); rt >= calls {
			t.Errorf("flush=%v: %d round trips for %d concurrent calls: nothing was pipelined", flush, rt, calls)
		}
		holders.Range(func(h, _ any) bool {
			wg.Go(func() {
				if err := c.ReleaseSlots(ctx, h.(string), "batch:acct"); err != nil {
					t.Errorf("ReleaseSlots %s: %v", h, err)
				}
			})
			return true
		})
		wg.Wait()
		if n, err := c.SlotCount(ctx, "batch:acct"); err != nil || n != 0 {
			t.Fatalf("flush=%v: %d slots held after every release (err %v)", flush, n, err)
		}
	}
}

// A call queued behind the exchanges in flight whose context ends before its pipeline is
// sent is withdrawn: it fails with the context's error and takes nothing. Redis is paused so
// that the exchanges in flight cannot end meanwhile.
func TestQueuedCallWithdrawnWhenItsContextEnds(t *testing.T) {
	r := testenv.StartRedis(t)
	// The pause is shorter than the exchange timeout: the calls in flight wait it out.
	c := mustNew(t, Options{URL: r.URL(), KeyPrefix: uniquePrefix(), OpTimeout: 3 * time.Second})
	ctx := context.Background()
	if err := rawClient(t, r).Do(ctx, "CLIENT", "PAUSE", "600", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range maxInFlight {
		wg.Go(func() {
			if _, err := c.AcquireAccount(ctx, fmt.Sprintf("inflight%d", i), time.Minute, accountReq(100)); err != nil {
				t.Errorf("in-flight call %d: %v", i, err)
			}
		})
	}
	// Wait until the in-flight calls hold every exchange, so the next call queues.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.hot.mu.Lock()
		n := c.hot.active
		c.hot.mu.Unlock()
		if n == maxInFlight {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d exchanges in flight, want %d", n, maxInFlight)
		}
		time.Sleep(time.Millisecond)
	}
	qctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err := c.AcquireAccount(qctx, "withdrawn", time.Minute, accountReq(100))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("queued call whose context ended: err = %v, want the context's error", err)
	}
	wg.Wait()
	if n, err := c.SlotCount(ctx, "batch:acct"); err != nil || n != maxInFlight {
		t.Fatalf("%d slots held, want the %d in-flight calls' only (err %v)", n, maxInFlight, err)
	}
	c.hot.mu.Lock()
	defer c.hot.mu.Unlock()
	if c.hot.active != 0 || len(c.hot.queue) != 0 {
		t.Fatalf("after every call ended: %d exchanges in flight, %d queued", c.hot.active, len(c.hot.queue))
	}
}
