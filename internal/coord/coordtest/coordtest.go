// Package coordtest is the contract suite every coord.Coordinator must pass. Each
// implementation's tests call Run with a constructor; the suite checks behaviour only, with
// short TTLs and bounded polling instead of timing assertions.
package coordtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// shortTTL is the lifetime used where the suite waits for something to expire.
const shortTTL = 300 * time.Millisecond

// longTTL outlives any test: an entry with it must still be there at the end.
const longTTL = time.Minute

// patience bounds every wait for an expiry or a message. It is a failure bound, not a speed
// requirement: a correct implementation finishes long before it.
const patience = 10 * time.Second

// Run runs the contract suite. newCoord returns a fresh coordinator whose state no other call
// sees; the suite closes it.
func Run(t *testing.T, newCoord func(t *testing.T) coord.Coordinator) {
	t.Helper()
	fresh := func(t *testing.T) coord.Coordinator {
		t.Helper()
		c := newCoord(t)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	t.Run("Ping", func(t *testing.T) {
		if err := fresh(t).Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("Slots", func(t *testing.T) { testSlots(t, fresh) })
	t.Run("Accounts", func(t *testing.T) { testAccounts(t, fresh) })
	t.Run("Leases", func(t *testing.T) { testLeases(t, fresh) })
	t.Run("Sticky", func(t *testing.T) { testSticky(t, fresh) })
	t.Run("Counters", func(t *testing.T) { testCounters(t, fresh) })
	t.Run("Rates", func(t *testing.T) { testRates(t, fresh) })
	t.Run("PubSub", func(t *testing.T) { testPubSub(t, fresh) })
	t.Run("Janitor", func(t *testing.T) { testJanitor(t, fresh) })
}

// RunShared checks that two coordinators over the same backend (two nodes) see one state:
// limits hold across them, leases exclude each other, messages cross. newPair returns both.
func RunShared(t *testing.T, newPair func(t *testing.T) (coord.Coordinator, coord.Coordinator)) {
	t.Helper()
	ctx := context.Background()
	a, b := newPair(t)
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	nodes := []coord.Coordinator{a, b}

	t.Run("RateLimitAcrossNodes", func(t *testing.T) {
		const limit = 60
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Go(func() {
				ok, _, err := nodes[i%2].TakeRate(ctx, coord.RateReq{Key: "shared-rpm", Limit: limit, Cost: 1, Window: longTTL})
				if err != nil {
					t.Errorf("TakeRate: %v", err)
				}
				if ok {
					admitted.Add(1)
				}
			})
		}
		wg.Wait()
		if n := admitted.Load(); n != limit {
			t.Fatalf("%d of 200 admitted across two nodes, want exactly %d", n, limit)
		}
	})
	t.Run("SlotLimitAcrossNodes", func(t *testing.T) {
		const limit = 4
		peak := raceSlots(t, nodes, "shared-limit", limit, 100, 5)
		if peak > limit {
			t.Fatalf("peak holders %d across two nodes, limit %d", peak, limit)
		}
	})
	t.Run("AccountsAcrossNodes", func(t *testing.T) {
		checkPeaks(t, raceAccounts(t, nodes, 60, 5))
		// A binding made through one node steers the other, and a full bound account on one
		// node is bypassed on the other without rebinding.
		req := coord.AccountReq{Accounts: accounts(11, 1, 12, 0), Session: "shared-acct-session", SessionTTL: longTTL}
		g, err := a.AcquireAccount(ctx, "on-a", longTTL, req)
		if err != nil || g.Index != 0 {
			t.Fatalf("node a: %+v, %v; want account 11", g, err)
		}
		g, err = b.AcquireAccount(ctx, "on-b", longTTL, req)
		if err != nil || g.Index != 1 || g.Bound != 11 {
			t.Fatalf("node b: %+v, %v; want account 12 with the binding on 11", g, err)
		}
		wantSticky(t, b, "shared-acct-session", 11)
	})
	t.Run("LeaseAcrossNodes", func(t *testing.T) {
		ok, _, err := a.AcquireLease(ctx, "shared-job", "node-a", longTTL)
		mustOK(t, "node a acquires", ok, err)
		ok, _, err = b.AcquireLease(ctx, "shared-job", "node-b", longTTL)
		if err != nil || ok {
			t.Fatalf("node b acquired a lease node a holds: ok=%v err=%v", ok, err)
		}
	})
	t.Run("StickyAcrossNodes", func(t *testing.T) {
		if err := a.StickySet(ctx, "shared-session", 42, longTTL); err != nil {
			t.Fatalf("StickySet: %v", err)
		}
		got, err := b.StickyGet(ctx, "shared-session")
		if err != nil || got != 42 {
			t.Fatalf("node b StickyGet = %d, %v; want 42", got, err)
		}
	})
	t.Run("PubSubAcrossNodes", func(t *testing.T) {
		sub, cancel := subscribe(t, b, "shared-channel")
		defer cancel()
		if err := a.Publish(ctx, "shared-channel", "hello"); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if got := Receive(t, sub); got != "hello" {
			t.Fatalf("received %q, want %q", got, "hello")
		}
	})
}

func testSlots(t *testing.T, fresh func(*testing.T) coord.Coordinator) {
	ctx := context.Background()

	t.Run("LimitHoldsUnderRace", func(t *testing.T) {
		c := fresh(t)
		const limit = 5
		peak := raceSlots(t, []coord.Coordinator{c}, "race", limit, 200, 5)
		if peak > limit {
			t.Fatalf("peak holders %d, limit %d", peak, limit)
		}
		if peak == 0 {
			t.Fatalf("no goroutine ever got a slot")
		}
		wantCount(t, c, "race", 0)
	})

	t.Run("ExactlyLimitWinWithoutRelease", func(t *testing.T) {
		c := fresh(t)
		const limit = 7
		var wins atomic.Int64
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Go(func() {
				ok, _, err := c.AcquireSlots(ctx, fmt.Sprintf("h%d", i), longTTL, coord.SlotReq{Key: "grab", Limit: limit})
				if err != nil {
					t.Errorf("AcquireSlots: %v", err)
				}
				if ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != limit {
			t.Fatalf("%d holders got a slot, want exactly %d", wins.Load(), limit)
		}
		wantCount(t, c, "grab", limit)
	})

	t.Run("AllOrNothing", func(t *testing.T) {
		c := fresh(t)
		ok, _, err := c.AcquireSlots(ctx, "other", longTTL, coord.SlotReq{Key: "b", Limit: 1})
		mustOK(t, "other takes b", ok, err)
		ok, full, err := c.AcquireSlots(ctx, "me", longTTL,
			coord.SlotReq{Key: "a", Limit: 1}, coord.SlotReq{Key: "b", Limit: 1}, coord.SlotReq{Key: "c", Limit: 2})
		if err != nil || ok || full != 1 {
			t.Fatalf("AcquireSlots = ok %v full %d err %v; want false, 1, nil", ok, full, err)
		}
		wantCount(t, c, "a", 0)
		wantCount(t, c, "b", 1)
		wantCount(t, c, "c", 0)
	})

	t.Run("FullIsFirstFullSet", func(t *testing.T) {
		c := fresh(t)
		for _, key := range []string{"x", "y"} {
			ok, _, err := c.AcquireSlots(ctx, "other", longTTL, coord.SlotReq{Key: key, Limit: 1})
			mustOK(t, "other takes "+key, ok, err)
		}
		// The unlimited set in front still counts in the index.
		ok, full, err := c.AcquireSlots(ctx, "me", longTTL,
			coord.SlotReq{Key: "free", Limit: 0}, coord.SlotReq{Key: "w", Limit: 3},
			coord.SlotReq{Key: "y", Limit: 1}, coord.SlotReq{Key: "x", Limit: 1})
		if err != nil || ok || full != 2 {
			t.Fatalf("AcquireSlots = ok %v full %d err %v; want false, 2, nil", ok, full, err)
		}
		wantCount(t, c, "w", 0)
	})

	t.Run("ReacquireBySameHolderCountsOnce", func(t *testing.T) {
		c := fresh(t)
		for i := range 3 {
			ok, _, err := c.AcquireSlots(ctx, "me", longTTL, coord.SlotReq{Key: "s", Limit: 1}, coord.SlotReq{Key: "t", Limit: 2})
			mustOK(t, fmt.Sprintf("acquire #%d", i+1), ok, err)
		}
		wantCount(t, c, "s", 1)
		wantCount(t, c, "t", 1)
		ok, _, err := c.AcquireSlots(ctx, "other", longTTL, coord.SlotReq{Key: "t", Limit: 2})
		mustOK(t, "other fills t's second slot", ok, err)
		ok, full, err := c.AcquireSlots(ctx, "third", longTTL, coord.SlotReq{Key: "t", Limit: 2})
		if err != nil || ok || full != 0 {
			t.Fatalf("third holder on full t: ok %v full %d err %v", ok, full, err)
		}
	})

	t.Run("ReleaseFrees", func(t *testing.T) {
		c := fresh(t)
		ok, _, err := c.AcquireSlots(ctx, "me", longTTL, coord.SlotReq{Key: "r1", Limit: 1}, coord.SlotReq{Key: "r2", Limit: 1})
		mustOK(t, "me acquires", ok, err)
		// Another holder's release, and a release of a key never held, change nothing.
		if err := c.ReleaseSlots(ctx, "other", "r1", "r2", "never"); err != nil {
			t.Fatalf("ReleaseSlots by non-holder: %v", err)
		}
		wantCount(t, c, "r1", 1)
		ok, _, err = c.AcquireSlots(ctx, "other", longTTL, coord.SlotReq{Key: "r1", Limit: 1})
		if err != nil || ok {
			t.Fatalf("other acquired a full set: ok=%v err=%v", ok, err)
		}
		if err := c.ReleaseSlots(ctx, "me", "r1", "r2"); err != nil {
			t.Fatalf("ReleaseSlots: %v", err)
		}
		wantCount(t, c, "r1", 0)
		wantCount(t, c, "r2", 0)
		ok, _, err = c.AcquireSlots(ctx, "other", longTTL, coord.SlotReq{Key: "r1", Limit: 1})
		mustOK(t, "other acquires after release", ok, err)
		if err := c.ReleaseSlots(ctx, "me", "r1"); err != nil {
			t.Fatalf("second ReleaseSlots: %v", err)
		}
		wantCount(t, c, "r1", 1)
	})

	t.Run("ExpiryFreesCrashedHolder", func(t *testing.T) {
		c := fresh(t)
		ok, _, err := c.AcquireSlots(ctx, "crashed", shortTTL, coord.SlotReq{Key: "e", Limit: 1})
		mustOK(t, "crashed acquires", ok, err)
		Eventually(t, "the crashed holder's slot expires", func() bool {
			ok, _, err := c.AcquireSlots(ctx, "next", longTTL, coord.SlotReq{Key: "e", Limit: 1})
			if err != nil {
				t.Fatalf("AcquireSlots: %v", err)
			}
			return ok
		})
		wantCount(t, c, "e", 1)
	})

	t.Run("RefreshKeepsAlive", func(t *testing.T) {
		c := fresh(t)
		ok, _, err := c.AcquireSlots(ctx, "me", shortTTL, coord.SlotReq{Key: "k", Limit: 1})
		mustOK(t, "me acquires", ok, err)
		if _, err := c.RefreshSlots(ctx, longTTL, epochOf(t, c), []coord.Held{{Key: "k", Holder: "me"}, {Key: "absent", Holder: "me"}}); err != nil {
			t.Fatalf("RefreshSlots: %v", err)
		}
		time.Sleep(2 * shortTTL) // past the first expiry: only the refresh keeps it
		wantCount(t, c, "k", 1)
		wantCount(t, c, "absent", 0) // refresh never creates a slot
		ok, _, err = c.AcquireSlots(ctx, "other", longTTL, coord.SlotReq{Key: "k", Limit: 1})
		if err != nil || ok {
			t.Fatalf("other took a refreshed slot: ok=%v err=%v", ok, err)
		}
	})

	t.Run("RefreshDoesNotReviveExpired", func(t *testing.T) {
		c := fresh(t)
		ok, _, err := c.AcquireSlots(ctx, "me", shortTTL, coord.SlotReq{Key: "dead", Limit: 1})
		mustOK(t, "me acquires", ok, err)
		Eventually(t, "the slot expires", func() bool {
			n, err := c.SlotCount(ctx, "dead")
			if err != nil {
				t.Fatalf("SlotCount: %v", err)
			}
			return n == 0
		})
		if _, err := c.RefreshSlots(ctx, longTTL, epochOf(t, c), []coord.Held{{Key: "dead", Holder: "me"}}); err != nil {
			t.Fatalf("RefreshSlots: %v", err)
		}
		wantCount(t, c, "dead", 0)
	})

	t.Run("UnlimitedStoresNothing", func(t *testing.T) {
		c := fresh(t)
		for i := range 50 {
			ok, full, err := c.AcquireSlots(ctx, fmt.Sprintf("h%d", i), longTTL, coord.SlotReq{Key: "u0", Limit: 0}, coord.SlotReq{Key: "un", Limit: -1})
			if err != nil || !ok {
				t.Fatalf("unlimited acquire #%d: ok=%v full=%d err=%v", i, ok, full, err)
			}
		}
		wantCount(t, c, "u0", 0)
		wantCount(t, c, "un", 0)
		ok, _, err := c.AcquireSlots(ctx, "h", longTTL)
		mustOK(t, "acquire with no sets", ok, err)
	})

	t.Run("SlotCountSeesLiveOnly", func(t *testing.T) {
		c := fresh(t)
		wantCount(t, c, "n", 0)
		for i := range 3 {
			ok, _, err := c.AcquireSlots(ctx, fmt.Sprintf("long%d", i), longTTL, coord.SlotReq{Key: "n", Limit: 10})
			mustOK(t, "long acquire", ok, err)
		}
		ok, _, err := c.AcquireSlots(ctx, "short", shortTTL, coord.SlotReq{Key: "n", Limit: 10})
		mustOK(t, "short acquire", ok, err)
		Eventually(t, "the short holder drops out of the count", func() bool {
			n, err := c.SlotCount(ctx, "n")
			if err != nil {
				t.Fatalf("SlotCount: %v", err)
			}
			if n < 3 {
				t.Fatalf("SlotCount = %d, below the 3 long holders", n)
			}
			return n == 3
		})
	})

	t.Run("NonPositiveTTLRefused", func(t *testing.T) {
		c := fresh(t)
		if _, _, err := c.AcquireSlots(ctx, "me", 0, coord.SlotReq{Key: "z", Limit: 1}); err == nil {
			t.Fatalf("AcquireSlots with ttl 0 succeeded")
		}
		if _, err := c.RefreshSlots(ctx, -time.Second, "", []coord.Held{{Key: "z", Holder: "me"}}); err == nil {
			t.Fatalf("RefreshSlots with negative ttl succeeded")
		}
		wantCount(t, c, "z", 0)
	})
}

// raceSlots runs workers goroutines, spread over nodes, that each acquire, hold briefly and
// release a slot rounds times, and returns the highest number of simultaneous holders seen.
func raceSlots(t *testing.T, nodes []coord.Coordinator, key string, limit, workers, rounds int) int64 {
	t.Helper()
	ctx := context.Background()
	var inside, peak, wins atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		c := nodes[w%len(nodes)]
		wg.Go(func() {
			for r := range rounds {
				holder := fmt.Sprintf("w%d-r%d", w, r)
				ok, _, err := c.AcquireSlots(ctx, holder, longTTL, coord.SlotReq{Key: key, Limit: limit})
				if err != nil {
					t.Errorf("AcquireSlots: %v", err)
					return
				}
				if !ok {
					continue
				}
				wins.Add(1)
				n := inside.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(time.Millisecond)
				inside.Add(-1)
				if err := c.ReleaseSlots(ctx, holder, key); err != nil {
					t.Errorf("ReleaseSlots: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if wins.Load() == 0 {
		t.Errorf("no worker ever acquired a slot")
	}
	return peak.Load()
}

func testLeases(t *testing.T, fresh func(*testing.T) coord.Coordinator) {
	ctx := context.Background()

	t.Run("OneOwner", func(t *testing.T) {
		c := fresh(t)
		var wins atomic.Int64
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				ok, _, err := c.AcquireLease(ctx, "job", fmt.Sprintf("owner%d", i), longTTL)
				if err != nil {
					t.Errorf("AcquireLease: %v", err)
				}
				if ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d owners got the lease, want 1", wins.Load())
		}
	})

	t.Run("ReacquireExtendsWithSameFence", func(t *testing.T) {
		c := fresh(t)
		ok, f1, err := c.AcquireLease(ctx, "job", "a", shortTTL)
		mustOK(t, "a acquires", ok, err)
		ok, f2, err := c.AcquireLease(ctx, "job", "a", longTTL)
		mustOK(t, "a extends", ok, err)
		if f2 != f1 {
			t.Fatalf("extension changed the fence: %d -> %d", f1, f2)
		}
		time.Sleep(2 * shortTTL) // past the first ttl: only the extension keeps it
		ok, _, err = c.AcquireLease(ctx, "job", "b", longTTL)
		if err != nil || ok {
			t.Fatalf("b took an extended lease: ok=%v err=%v", ok, err)
		}
	})

	t.Run("FenceGrowsOnEachGrant", func(t *testing.T) {
		c := fresh(t)
		var last int64
		for i, owner := range []string{"a", "b", "a", "c"} {
			ok, fence, err := c.AcquireLease(ctx, "job", owner, longTTL)
			mustOK(t, fmt.Sprintf("grant #%d to %s", i+1, owner), ok, err)
			if fence <= last {
				t.Fatalf("grant #%d fence %d, not above previous %d", i+1, fence, last)
			}
			last = fence
			if err := c.ReleaseLease(ctx, "job", owner); err != nil {
				t.Fatalf("ReleaseLease: %v", err)
			}
		}
	})

	t.Run("FenceGrowsAcrossLostState", func(t *testing.T) {
		// A backend that lost its data (a restart without persistence) must still grant a
		// higher fence than it did before, or a job's fenced writes would be refused forever.
		ok, before, err := fresh(t).AcquireLease(ctx, "job", "a", longTTL)
		mustOK(t, "grant before the loss", ok, err)
		time.Sleep(5 * time.Millisecond)
		ok, after, err := fresh(t).AcquireLease(ctx, "job", "a", longTTL)
		mustOK(t, "grant after the loss", ok, err)
		if after <= before {
			t.Fatalf("fence after losing state %d, not above %d", after, before)
		}
	})

	t.Run("ReleaseByNonOwnerDoesNothing", func(t *testing.T) {
		c := fresh(t)
		ok, _, err := c.AcquireLease(ctx, "job", "a", longTTL)
		mustOK(t, "a acquires", ok, err)
		if err := c.ReleaseLease(ctx, "job", "b"); err != nil {
			t.Fatalf("ReleaseLease by non-owner: %v", err)
		}
		if err := c.ReleaseLease(ctx, "never-granted", "b"); err != nil {
			t.Fatalf("ReleaseLease of unknown name: %v", err)
		}
		ok, _, err = c.AcquireLease(ctx, "job", "c", longTTL)
		if err != nil || ok {
			t.Fatalf("c acquired after a non-owner release: ok=%v err=%v", ok, err)
		}
		if err := c.ReleaseLease(ctx, "job", "a"); err != nil {
			t.Fatalf("ReleaseLease by owner: %v", err)
		}
		ok, _, err = c.AcquireLease(ctx, "job", "c", longTTL)
		mustOK(t, "c acquires after the owner's release", ok, err)
	})

	t.Run("ExpiryHandsOver", func(t *testing.T) {
		c := fresh(t)
		ok, f1, err := c.AcquireLease(ctx, "job", "crashed", shortTTL)
		mustOK(t, "crashed acquires", ok, err)
		var f2 int64
		Eventually(t, "the lease passes to the next owner", func() bool {
			ok, fence, err := c.AcquireLease(ctx, "job", "next", longTTL)
			if err != nil {
				t.Fatalf("AcquireLease: %v", err)
			}
			f2 = fence
			return ok
		})
		if f2 <= f1 {
			t.Fatalf("fence after hand-over %d, not above %d", f2, f1)
		}
		// The old owner cannot take it back, nor free it.
		if err := c.ReleaseLease(ctx, "job", "crashed"); err != nil {
			t.Fatalf("ReleaseLease: %v", err)
		}
		ok, _, err = c.AcquireLease(ctx, "job", "crashed", longTTL)
		if err != nil || ok {
			t.Fatalf("stale owner re-acquired: ok=%v err=%v", ok, err)
		}
	})

	t.Run("NonPositiveTTLRefused", func(t *testing.T) {
		c := fresh(t)
		if _, _, err := c.AcquireLease(ctx, "job", "a", 0); err == nil {
			t.Fatalf("AcquireLease with ttl 0 succeeded")
		}
		ok, _, err := c.AcquireLease(ctx, "job", "b", longTTL)
		mustOK(t, "b acquires after a refused call", ok, err)
	})
}

func testSticky(t *testing.T, fresh func(*testing.T) coord.Coordinator) {
	ctx := context.Background()

	t.Run("GetSetReplaceDelete", func(t *testing.T) {
		c := fresh(t)
		wantSticky(t, c, "s", 0)
		if err := c.StickySet(ctx, "s", 7, longTTL); err != nil {
			t.Fatalf("StickySet: %v", err)
		}
		wantSticky(t, c, "s", 7)
		if err := c.StickySet(ctx, "s", 9, longTTL); err != nil {
			t.Fatalf("StickySet replace: %v", err)
		}
		wantSticky(t, c, "s", 9)
		if err := c.StickyDelete(ctx, "s", 7); err != nil {
			t.Fatalf("StickyDelete of a stale id: %v", err)
		}
		wantSticky(t, c, "s", 9)
		if err := c.StickyDelete(ctx, "s", 9); err != nil {
			t.Fatalf("StickyDelete: %v", err)
		}
		wantSticky(t, c, "s", 0)
		if err := c.StickyDelete(ctx, "missing", 1); err != nil {
			t.Fatalf("StickyDelete of a missing key: %v", err)
		}
	})

	t.Run("KeysAreIndependent", func(t *testing.T) {
		c := fresh(t)
		if err := c.StickySet(ctx, "group1:sess", 1, longTTL); err != nil {
			t.Fatalf("StickySet: %v", err)
		}
		if err := c.StickySet(ctx, "group2:sess", 2, longTTL); err != nil {
			t.Fatalf("StickySet: %v", err)
		}
		wantSticky(t, c, "group1:sess", 1)
		wantSticky(t, c, "group2:sess", 2)
	})

	t.Run("Expires", func(t *testing.T) {
		c := fresh(t)
		if err := c.StickySet(ctx, "s", 5, shortTTL); err != nil {
			t.Fatalf("StickySet: %v", err)
		}
		Eventually(t, "the binding expires", func() bool {
			id, err := c.StickyGet(ctx, "s")
			if err != nil {
				t.Fatalf("StickyGet: %v", err)
			}
			if id != 0 && id != 5 {
				t.Fatalf("StickyGet = %d, want 5 or 0", id)
			}
			return id == 0
		})
	})

	t.Run("NonPositiveTTLRefused", func(t *testing.T) {
		c := fresh(t)
		if err := c.StickySet(ctx, "s", 5, 0); err == nil {
			t.Fatalf("StickySet with ttl 0 succeeded")
		}
		wantSticky(t, c, "s", 0)
	})
}

func testCounters(t *testing.T, fresh func(*testing.T) coord.Coordinator) {
	ctx := context.Background()

	t.Run("MissingIsZero", func(t *testing.T) {
		wantCounter(t, fresh(t), "none", 0)
	})

	t.Run("IncrAccumulates", func(t *testing.T) {
		c := fresh(t)
		for i, step := range []struct{ delta, want int64 }{{1, 1}, {4, 5}, {-2, 3}} {
			got, err := c.Incr(ctx, "n", step.delta, longTTL)
			if err != nil || got != step.want {
				t.Fatalf("Incr #%d = %d, %v; want %d", i+1, got, err, step.want)
			}
		}
		wantCounter(t, c, "n", 3)
	})

	t.Run("ConcurrentIncrLosesNothing", func(t *testing.T) {
		c := fresh(t)
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				for range 10 {
					if _, err := c.Incr(ctx, "n", 1, longTTL); err != nil {
						t.Errorf("Incr: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		wantCounter(t, c, "n", 1000)
	})

	t.Run("FixedWindow", func(t *testing.T) {
		c := fresh(t)
		if _, err := c.Incr(ctx, "w", 1, shortTTL); err != nil {
			t.Fatalf("Incr: %v", err)
		}
		// A later increment with a long ttl must not move the window's end: were it
		// extended, the poll below would outlast its bound.
		if got, err := c.Incr(ctx, "w", 1, longTTL); err != nil || got != 2 {
			t.Fatalf("second Incr = %d, %v; want 2", got, err)
		}
		Eventually(t, "the window ends", func() bool {
			v, err := c.Get(ctx, "w")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			return v == 0
		})
		if got, err := c.Incr(ctx, "w", 1, longTTL); err != nil || got != 1 {
			t.Fatalf("Incr in a new window = %d, %v; want 1", got, err)
		}
	})

	t.Run("NoTTLKeepsCurrentExpiry", func(t *testing.T) {
		c := fresh(t)
		if _, err := c.Incr(ctx, "w", 1, shortTTL); err != nil {
			t.Fatalf("Incr: %v", err)
		}
		if _, err := c.Incr(ctx, "w", 1, 0); err != nil {
			t.Fatalf("Incr with ttl 0: %v", err)
		}
		Eventually(t, "the window still ends", func() bool {
			v, err := c.Get(ctx, "w")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			return v == 0
		})
	})
}

func testPubSub(t *testing.T, fresh func(*testing.T) coord.Coordinator) {
	ctx := context.Background()

	t.Run("PublishAfterSubscribeArrivesInOrder", func(t *testing.T) {
		c := fresh(t)
		sub, cancel := subscribe(t, c, "ch")
		defer cancel()
		for _, m := range []string{"key:1", "key:2", "account:3"} {
			if err := c.Publish(ctx, "ch", m); err != nil {
				t.Fatalf("Publish: %v", err)
			}
		}
		for _, want := range []string{"key:1", "key:2", "account:3"} {
			if got := Receive(t, sub); got != want {
				t.Fatalf("received %q, want %q", got, want)
			}
		}
	})

	t.Run("TwoSubscribersBothReceive", func(t *testing.T) {
		c := fresh(t)
		s1, cancel1 := subscribe(t, c, "ch")
		defer cancel1()
		s2, cancel2 := subscribe(t, c, "ch")
		defer cancel2()
		if err := c.Publish(ctx, "ch", "m"); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if got := Receive(t, s1); got != "m" {
			t.Fatalf("subscriber 1 received %q", got)
		}
		if got := Receive(t, s2); got != "m" {
			t.Fatalf("subscriber 2 received %q", got)
		}
	})

	t.Run("OtherChannelsStayApart", func(t *testing.T) {
		c := fresh(t)
		sub, cancel := subscribe(t, c, "mine")
		defer cancel()
		if err := c.Publish(ctx, "theirs", "not for me"); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if err := c.Publish(ctx, "mine", "for me"); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if got := Receive(t, sub); got != "for me" {
			t.Fatalf("received %q, want %q", got, "for me")
		}
	})

	t.Run("CancelClosesChannel", func(t *testing.T) {
		c := fresh(t)
		sub, cancel := subscribe(t, c, "ch")
		cancel()
		deadline := time.After(patience)
		for {
			select {
			case _, open := <-sub:
				if !open {
					// Publishing to a channel nobody listens on any more is fine.
					if err := c.Publish(ctx, "ch", "late"); err != nil {
						t.Fatalf("Publish after cancel: %v", err)
					}
					return
				}
			case <-deadline:
				t.Fatalf("channel still open %v after cancel", patience)
			}
		}
	})

	t.Run("CloseEndsSubscriptions", func(t *testing.T) {
		c := fresh(t)
		sub, cancel := subscribe(t, c, "ch")
		defer cancel()
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		deadline := time.After(patience)
		for {
			select {
			case _, open := <-sub:
				if !open {
					return
				}
			case <-deadline:
				t.Fatalf("channel still open %v after Close", patience)
			}
		}
	})
}

// ---- helpers ----

func mustOK(t *testing.T, what string, ok bool, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !ok {
		t.Fatalf("%s: refused", what)
	}
}

// epochOf returns c's current epoch.
func epochOf(t *testing.T, c coord.Coordinator) string {
	t.Helper()
	e, err := c.PollEpoch(context.Background())
	if err != nil || e == "" {
		t.Fatalf("PollEpoch = %q, %v", e, err)
	}
	return e
}

func wantCount(t *testing.T, c coord.Coordinator, key string, want int) {
	t.Helper()
	got, err := c.SlotCount(context.Background(), key)
	if err != nil {
		t.Fatalf("SlotCount(%q): %v", key, err)
	}
	if got != want {
		t.Fatalf("SlotCount(%q) = %d, want %d", key, got, want)
	}
}

func wantSticky(t *testing.T, c coord.Coordinator, key string, want int64) {
	t.Helper()
	got, err := c.StickyGet(context.Background(), key)
	if err != nil {
		t.Fatalf("StickyGet(%q): %v", key, err)
	}
	if got != want {
		t.Fatalf("StickyGet(%q) = %d, want %d", key, got, want)
	}
}

func wantCounter(t *testing.T, c coord.Coordinator, key string, want int64) {
	t.Helper()
	got, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if got != want {
		t.Fatalf("Get(%q) = %d, want %d", key, got, want)
	}
}

// Eventually polls cond until it holds, failing after patience.
func Eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func subscribe(t *testing.T, c coord.Coordinator, channel string) (<-chan string, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := c.Subscribe(ctx, channel)
	if err != nil {
		cancel()
		t.Fatalf("Subscribe(%q): %v", channel, err)
	}
	return sub, cancel
}

// Receive returns the next message, failing after patience or when the channel closes.
func Receive(t *testing.T, sub <-chan string) string {
	t.Helper()
	select {
	case m, ok := <-sub:
		if !ok {
			t.Fatalf("subscription closed while waiting for a message")
		}
		return m
	case <-time.After(patience):
		t.Fatalf("no message within %v", patience)
	}
	return ""
}

// IsUnavailable reports whether err is the contract's backend failure.
func IsUnavailable(err error) bool { return errors.Is(err, coord.ErrUnavailable) }

func testRates(t *testing.T, fresh func(*testing.T) coord.Coordinator) {
	ctx := context.Background()
	take := func(t *testing.T, c coord.Coordinator, reqs ...coord.RateReq) (bool, time.Duration) {
		t.Helper()
		ok, wait, err := c.TakeRate(ctx, reqs...)
		if err != nil {
			t.Fatalf("TakeRate: %v", err)
		}
		return ok, wait
	}

	t.Run("AdmitsUpToTheLimit", func(t *testing.T) {
		c := fresh(t)
		for i := range 3 {
			if ok, _ := take(t, c, coord.RateReq{Key: "r", Limit: 3, Cost: 1, Window: longTTL}); !ok {
				t.Fatalf("request %d refused under the limit", i+1)
			}
		}
		ok, wait := take(t, c, coord.RateReq{Key: "r", Limit: 3, Cost: 1, Window: longTTL})
		if ok || wait <= 0 || wait > longTTL {
			t.Fatalf("fourth request: ok %v wait %v; want refused with the window's rest", ok, wait)
		}
	})

	t.Run("AllOrNothing", func(t *testing.T) {
		c := fresh(t)
		take(t, c, coord.RateReq{Key: "full", Limit: 1, Cost: 1, Window: longTTL})
		ok, _ := take(t, c, coord.RateReq{Key: "roomy", Limit: 5, Cost: 1, Window: longTTL},
			coord.RateReq{Key: "full", Limit: 1, Cost: 1, Window: longTTL})
		if ok {
			t.Fatalf("admitted with one window full")
		}
		// The refused call counted nothing in the roomy window: it still takes five.
		for i := range 5 {
			if ok, _ := take(t, c, coord.RateReq{Key: "roomy", Limit: 5, Cost: 1, Window: longTTL}); !ok {
				t.Fatalf("roomy request %d refused: the refused call was counted", i+1)
			}
		}
	})

	t.Run("ScopedWindowsAllOrNothing", func(t *testing.T) {
		c := fresh(t)
		// Many scopes, so that on a sharded backend they land on different shards.
		for i := range 20 {
			scope := fmt.Sprintf("user:%d", i)
			user := coord.RateReq{Key: "rpm:" + scope, Scope: scope, Limit: 2, Cost: 1, Window: longTTL}
			key := coord.RateReq{Key: fmt.Sprintf("rpm:key:%d", i), Scope: scope, Limit: 1, Cost: 1, Window: longTTL}
			if ok, _ := take(t, c, key, user); !ok {
				t.Fatalf("scope %s: first request refused", scope)
			}
			if ok, _ := take(t, c, key, user); ok {
				t.Fatalf("scope %s: admitted with the key's window full", scope)
			}
			// The refused call counted nothing in the user's window: one more fits.
			if ok, _ := take(t, c, user); !ok {
				t.Fatalf("scope %s: the refused call was counted in the user's window", scope)
			}
			if ok, _ := take(t, c, user); ok {
				t.Fatalf("scope %s: admitted over the user's limit", scope)
			}
		}
	})

	t.Run("ZeroCostChecksUnlimitedCounts", func(t *testing.T) {
		c := fresh(t)
		// Tokens are added after the answer, unchecked; the next request checks the sum.
		if ok, _ := take(t, c, coord.RateReq{Key: "tpm", Limit: 0, Cost: 900, Window: longTTL}); !ok {
			t.Fatalf("an unchecked add was refused")
		}
		if ok, _ := take(t, c, coord.RateReq{Key: "tpm", Limit: 1000, Cost: 0, Window: longTTL}); !ok {
			t.Fatalf("refused below the limit")
		}
		take(t, c, coord.RateReq{Key: "tpm", Limit: 0, Cost: 100, Window: longTTL})
		if ok, _ := take(t, c, coord.RateReq{Key: "tpm", Limit: 1000, Cost: 0, Window: longTTL}); ok {
			t.Fatalf("admitted at the limit")
		}
	})

	t.Run("WindowEnds", func(t *testing.T) {
		c := fresh(t)
		take(t, c, coord.RateReq{Key: "w", Limit: 1, Cost: 1, Window: shortTTL})
		Eventually(t, "the window ends", func() bool {
			ok, _ := take(t, c, coord.RateReq{Key: "w", Limit: 1, Cost: 1, Window: shortTTL})
			return ok
		})
	})
}
