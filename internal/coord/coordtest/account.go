package coordtest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// accounts builds candidates: ids with their limits, in order; each account's set is
// "acct:<id>".
func accounts(idLimit ...int) []coord.AccountSlot {
	var out []coord.AccountSlot
	for i := 0; i+1 < len(idLimit); i += 2 {
		id := int64(idLimit[i])
		out = append(out, coord.AccountSlot{ID: id, Slot: coord.SlotReq{Key: fmt.Sprintf("acct:%d", id), Limit: idLimit[i+1]}})
	}
	return out
}

func acctKey(id int64) string { return fmt.Sprintf("acct:%d", id) }

// grantOf runs AcquireAccount and returns the id granted (0 for none) and the grant.
func grantOf(t *testing.T, c coord.Coordinator, holder string, req coord.AccountReq) (int64, coord.AccountGrant) {
	t.Helper()
	g, err := c.AcquireAccount(context.Background(), holder, longTTL, req)
	if err != nil {
		t.Fatalf("AcquireAccount(%s): %v", holder, err)
	}
	if g.Index < 0 {
		return 0, g
	}
	if g.Index >= len(req.Accounts) || g.BaseFull != -1 {
		t.Fatalf("AcquireAccount(%s) = %+v: index out of range or a full base reported with a grant", holder, g)
	}
	return req.Accounts[g.Index].ID, g
}

// fill takes every slot of account id's set (limit n) with other holders.
func fill(t *testing.T, c coord.Coordinator, id int64, n int) {
	t.Helper()
	for i := range n {
		ok, _, err := c.AcquireSlots(context.Background(), fmt.Sprintf("other-%d-%d", id, i), longTTL, coord.SlotReq{Key: acctKey(id), Limit: n})
		mustOK(t, "fill", ok, err)
	}
}

func bind(t *testing.T, c coord.Coordinator, session string, id int64) {
	t.Helper()
	if err := c.StickySet(context.Background(), session, id, longTTL); err != nil {
		t.Fatalf("StickySet: %v", err)
	}
}

func testAccounts(t *testing.T, fresh func(*testing.T) coord.Coordinator) {
	ctx := context.Background()
	sess := func(accts []coord.AccountSlot) coord.AccountReq {
		return coord.AccountReq{Accounts: accts, Session: "s", SessionTTL: longTTL}
	}

	t.Run("NoBindingGrantsFirstWithRoomAndBindsIt", func(t *testing.T) {
		c := fresh(t)
		fill(t, c, 1, 1)
		got, g := grantOf(t, c, "me", sess(accounts(1, 1, 2, 5, 3, 5)))
		if got != 2 || g.Bound != 0 {
			t.Fatalf("granted %d (bound %d), want 2 (bound 0)", got, g.Bound)
		}
		wantSticky(t, c, "s", 2)
		wantCount(t, c, acctKey(2), 1)
		wantCount(t, c, acctKey(3), 0)
	})

	t.Run("BoundAccountComesFirst", func(t *testing.T) {
		c := fresh(t)
		bind(t, c, "s", 3)
		got, g := grantOf(t, c, "me", sess(accounts(1, 5, 2, 5, 3, 5)))
		if got != 3 || g.Bound != 3 {
			t.Fatalf("granted %d (bound %d), want the bound 3", got, g.Bound)
		}
		wantSticky(t, c, "s", 3)
		wantCount(t, c, acctKey(1), 0)
	})

	t.Run("BindingIsRefreshed", func(t *testing.T) {
		c := fresh(t)
		if err := c.StickySet(ctx, "s", 2, shortTTL); err != nil {
			t.Fatal(err)
		}
		if got, _ := grantOf(t, c, "me", sess(accounts(1, 0, 2, 0))); got != 2 {
			t.Fatalf("granted %d, want the bound 2", got)
		}
		time.Sleep(2 * shortTTL) // past the first expiry: only the refresh keeps it
		wantSticky(t, c, "s", 2)
	})

	t.Run("FullBoundIsBypassedWithoutRebinding", func(t *testing.T) {
		c := fresh(t)
		bind(t, c, "s", 1)
		fill(t, c, 1, 2)
		got, g := grantOf(t, c, "me", sess(accounts(1, 2, 2, 2)))
		if got != 2 || g.Bound != 1 {
			t.Fatalf("granted %d (bound %d), want 2 (bound 1)", got, g.Bound)
		}
		wantSticky(t, c, "s", 1)
	})

	t.Run("UnavailableBoundIsRebound", func(t *testing.T) {
		c := fresh(t)
		bind(t, c, "s", 9) // 9 is not a candidate: marked, removed, or no longer serving the model
		got, g := grantOf(t, c, "me", sess(accounts(1, 0, 2, 0)))
		if got != 1 || g.Bound != 9 {
			t.Fatalf("granted %d (bound %d), want 1 (bound 9)", got, g.Bound)
		}
		wantSticky(t, c, "s", 1)
	})

	t.Run("KeptBoundStays", func(t *testing.T) {
		c := fresh(t)
		bind(t, c, "s", 9)
		req := sess(accounts(1, 0, 2, 0))
		req.Keep = []int64{7, 9}
		if got, _ := grantOf(t, c, "me", req); got != 1 {
			t.Fatalf("granted %d, want 1", got)
		}
		wantSticky(t, c, "s", 9)
	})

	t.Run("FullBaseTakesNothing", func(t *testing.T) {
		c := fresh(t)
		ok, _, err := c.AcquireSlots(ctx, "other", longTTL, coord.SlotReq{Key: "key", Limit: 1})
		mustOK(t, "other takes the key's slot", ok, err)
		req := sess(accounts(1, 5))
		req.Base = []coord.SlotReq{{Key: "free", Limit: 0}, {Key: "user", Limit: 3}, {Key: "key", Limit: 1}}
		got, g := grantOf(t, c, "me", req)
		if got != 0 || g.BaseFull != 2 {
			t.Fatalf("granted %d, base full %d; want none, 2", got, g.BaseFull)
		}
		wantCount(t, c, "user", 0)
		wantCount(t, c, acctKey(1), 0)
		wantSticky(t, c, "s", 0)
	})

	t.Run("AllFullTakesNothing", func(t *testing.T) {
		c := fresh(t)
		bind(t, c, "s", 9)
		fill(t, c, 1, 1)
		fill(t, c, 2, 1)
		req := sess(accounts(1, 1, 2, 1))
		req.Base = []coord.SlotReq{{Key: "user", Limit: 3}}
		got, g := grantOf(t, c, "me", req)
		if got != 0 || g.Index != -1 || g.BaseFull != -1 || g.Bound != 9 {
			t.Fatalf("got %d %+v; want no grant, no full base, bound 9", got, g)
		}
		wantCount(t, c, "user", 0)
		wantSticky(t, c, "s", 9)
	})

	t.Run("GrantTakesBaseAndAccountSlots", func(t *testing.T) {
		c := fresh(t)
		req := coord.AccountReq{Accounts: accounts(1, 0, 2, 4),
			Base: []coord.SlotReq{{Key: "user", Limit: 2}, {Key: "key", Limit: 2}}}
		if got, _ := grantOf(t, c, "me", req); got != 1 {
			t.Fatalf("granted %d, want 1", got)
		}
		wantCount(t, c, "user", 1)
		wantCount(t, c, "key", 1)
		wantCount(t, c, acctKey(1), 0) // unlimited: nothing stored
		req.Accounts = accounts(2, 4)
		if got, _ := grantOf(t, c, "you", req); got != 2 {
			t.Fatalf("granted %d, want 2", got)
		}
		wantCount(t, c, acctKey(2), 1)
		// The base sets are full now: a third holder gets nothing.
		if got, g := grantOf(t, c, "third", req); got != 0 || g.BaseFull != 0 {
			t.Fatalf("third: granted %d, base full %d; want none, 0", got, g.BaseFull)
		}
		if err := c.ReleaseSlots(ctx, "you", "user", "key", acctKey(2)); err != nil {
			t.Fatal(err)
		}
		if got, _ := grantOf(t, c, "third", req); got != 2 {
			t.Fatalf("third after a release: granted %d, want 2", got)
		}
	})

	t.Run("FailoverBySameHolderCountsBaseOnce", func(t *testing.T) {
		c := fresh(t)
		base := []coord.SlotReq{{Key: "user", Limit: 1}}
		if got, _ := grantOf(t, c, "me", coord.AccountReq{Base: base, Accounts: accounts(1, 1, 2, 1)}); got != 1 {
			t.Fatalf("first attempt on %d, want 1", got)
		}
		if err := c.ReleaseSlots(ctx, "me", acctKey(1)); err != nil {
			t.Fatal(err)
		}
		// The second attempt still holds the user's only slot.
		if got, _ := grantOf(t, c, "me", coord.AccountReq{Base: base, Accounts: accounts(2, 1)}); got != 2 {
			t.Fatalf("second attempt on %d, want 2", got)
		}
		wantCount(t, c, "user", 1)
		wantCount(t, c, acctKey(1), 0)
		wantCount(t, c, acctKey(2), 1)
	})

	t.Run("NoSessionBindsNothing", func(t *testing.T) {
		c := fresh(t)
		if got, g := grantOf(t, c, "me", coord.AccountReq{Accounts: accounts(1, 0)}); got != 1 || g.Bound != 0 {
			t.Fatalf("granted %d bound %d", got, g.Bound)
		}
		wantSticky(t, c, "", 0)
	})

	t.Run("ExpiredHoldersMakeRoom", func(t *testing.T) {
		c := fresh(t)
		ok, _, err := c.AcquireSlots(ctx, "crashed", shortTTL, coord.SlotReq{Key: acctKey(1), Limit: 1})
		mustOK(t, "crashed takes account 1", ok, err)
		Eventually(t, "the crashed holder's slot frees account 1", func() bool {
			got, _ := grantOf(t, c, "me", coord.AccountReq{Accounts: accounts(1, 1, 2, 1)})
			if got == 2 {
				if err := c.ReleaseSlots(ctx, "me", acctKey(2)); err != nil {
					t.Fatal(err)
				}
			}
			return got == 1
		})
	})

	t.Run("ReleaseAndBindFreesSlotsAndBinds", func(t *testing.T) {
		c := fresh(t)
		base := []coord.SlotReq{{Key: "user", Limit: 1}}
		if got, _ := grantOf(t, c, "me", coord.AccountReq{Base: base, Accounts: accounts(1, 1)}); got != 1 {
			t.Fatalf("granted %d, want 1", got)
		}
		bind(t, c, "answer", 9) // replaced, whatever it was
		if err := c.ReleaseAndBind(ctx, "me", []string{"user", acctKey(1)},
			coord.Binding{Key: "answer", AccountID: 1, TTL: shortTTL}); err != nil {
			t.Fatal(err)
		}
		wantCount(t, c, "user", 0)
		wantCount(t, c, acctKey(1), 0)
		wantSticky(t, c, "answer", 1)
		// The binding lasts its own TTL, not the session's.
		Eventually(t, "the binding expires after its ttl", func() bool {
			id, err := c.StickyGet(ctx, "answer")
			return err == nil && id == 0
		})
		// Without a binding it is a release; with no keys, a binding.
		if got, _ := grantOf(t, c, "you", coord.AccountReq{Base: base, Accounts: accounts(1, 1)}); got != 1 {
			t.Fatalf("granted %d after the release, want 1", got)
		}
		if err := c.ReleaseAndBind(ctx, "you", []string{"user", acctKey(1)}, coord.Binding{}); err != nil {
			t.Fatal(err)
		}
		wantCount(t, c, "user", 0)
		wantSticky(t, c, "answer", 0)
		if err := c.ReleaseAndBind(ctx, "nobody", nil, coord.Binding{Key: "alone", AccountID: 4, TTL: longTTL}); err != nil {
			t.Fatal(err)
		}
		wantSticky(t, c, "alone", 4)
		if err := c.ReleaseAndBind(ctx, "nobody", nil, coord.Binding{Key: "alone", AccountID: 5}); err == nil {
			t.Fatal("a binding without a ttl accepted")
		}
		wantSticky(t, c, "alone", 4)
	})

	t.Run("BadTTLRefused", func(t *testing.T) {
		c := fresh(t)
		if _, err := c.AcquireAccount(ctx, "me", 0, coord.AccountReq{Accounts: accounts(1, 1)}); err == nil {
			t.Fatalf("ttl 0 accepted")
		}
		if _, err := c.AcquireAccount(ctx, "me", longTTL, coord.AccountReq{Accounts: accounts(1, 1), Session: "s"}); err == nil {
			t.Fatalf("a session without a ttl accepted")
		}
		wantCount(t, c, acctKey(1), 0)
	})

	t.Run("LimitsHoldUnderRace", func(t *testing.T) {
		c := fresh(t)
		peaks := raceAccounts(t, []coord.Coordinator{c}, 100, 5)
		checkPeaks(t, peaks)
	})

	t.Run("FullBoundNeverRebindsUnderRace", func(t *testing.T) {
		// Many requests of one session race while its account is full: every one is served
		// elsewhere, and the binding never moves.
		c := fresh(t)
		bind(t, c, "s", 1)
		fill(t, c, 1, 1)
		var wg sync.WaitGroup
		var wrong atomic.Int64
		for i := range 50 {
			wg.Go(func() {
				g, err := c.AcquireAccount(ctx, fmt.Sprintf("h%d", i), longTTL, sess(accounts(1, 1, 2, 0, 3, 0)))
				if err != nil {
					t.Errorf("AcquireAccount: %v", err)
					return
				}
				if g.Index != 1 || g.Bound != 1 {
					wrong.Add(1)
				}
			})
		}
		wg.Wait()
		if wrong.Load() != 0 {
			t.Fatalf("%d of 50 requests were not sent to account 2 with the binding on 1", wrong.Load())
		}
		wantSticky(t, c, "s", 1)
	})
}

// raceLimits are the sets raceAccounts uses: a user of 6 over two accounts of 2 and 3.
var raceLimits = map[string]int{"race-user": 6, acctKey(1): 2, acctKey(2): 3}

// raceAccounts runs workers goroutines, spread over nodes, that each take a user slot and an
// account (1 or 2, the bound one of their own session first), hold briefly and release,
// rounds times, and returns the peak number of holders seen in every set.
func raceAccounts(t *testing.T, nodes []coord.Coordinator, workers, rounds int) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	inside := map[string]int64{}
	peaks := map[string]int64{}
	enter := func(keys []string, d int64) {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range keys {
			inside[k] += d
			peaks[k] = max(peaks[k], inside[k])
		}
	}
	var wins atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		c := nodes[w%len(nodes)]
		wg.Go(func() {
			for r := range rounds {
				holder := fmt.Sprintf("w%d-r%d", w, r)
				req := coord.AccountReq{
					Base:     []coord.SlotReq{{Key: "race-user", Limit: raceLimits["race-user"]}},
					Accounts: accounts(1, raceLimits[acctKey(1)], 2, raceLimits[acctKey(2)]),
					Session:  fmt.Sprintf("race-session-%d", w%7), SessionTTL: longTTL,
				}
				g, err := c.AcquireAccount(ctx, holder, longTTL, req)
				if err != nil {
					t.Errorf("AcquireAccount: %v", err)
					return
				}
				if g.Index < 0 {
					continue
				}
				wins.Add(1)
				keys := []string{"race-user", acctKey(req.Accounts[g.Index].ID)}
				enter(keys, 1)
				time.Sleep(time.Millisecond)
				enter(keys, -1)
				if err := c.ReleaseSlots(ctx, holder, keys...); err != nil {
					t.Errorf("ReleaseSlots: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if wins.Load() == 0 {
		t.Errorf("no worker ever got an account")
	}
	return peaks
}

func checkPeaks(t *testing.T, peaks map[string]int64) {
	t.Helper()
	for key, limit := range raceLimits {
		if peaks[key] > int64(limit) {
			t.Errorf("peak holders of %s: %d, limit %d", key, peaks[key], limit)
		}
	}
}
