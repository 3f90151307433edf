package coordtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// RunLoss checks what a loss of the backend's state does to slots (coord.Slots: epochs and
// the recovery window). newPair returns two nodes over one backend (they may be the same
// coordinator) and wipe, which makes the backend lose everything it holds, as a Redis
// restart without its data or a failover to an empty replica would.
func RunLoss(t *testing.T, newPair func(t *testing.T) (a, b coord.Coordinator, wipe func())) {
	t.Helper()
	ctx := context.Background()

	t.Run("OpenAtStart", func(t *testing.T) {
		a, _, _ := newPair(t)
		g, err := a.AcquireAccount(ctx, "first", longTTL, coord.AccountReq{Accounts: accounts(1, 1)})
		if err != nil || g.Index != 0 || g.Recovering != 0 || g.Epoch == "" {
			t.Fatalf("first AcquireAccount of a fresh backend = %+v, %v; want a grant and an epoch", g, err)
		}
		if e := epochOf(t, a); e != g.Epoch {
			t.Fatalf("PollEpoch answers epoch %q, AcquireAccount %q", e, g.Epoch)
		}
		if e, err := a.RefreshSlots(ctx, longTTL, g.Epoch, nil); err != nil || e != g.Epoch {
			t.Fatalf("RefreshSlots answers epoch %q, %v; AcquireAccount %q", e, err, g.Epoch)
		}
	})

	t.Run("HoldersRegisteredAgainBeforeAdmission", func(t *testing.T) {
		a, b, wipe := newPair(t)
		const limit = 3
		req := coord.AccountReq{Base: []coord.SlotReq{{Key: "loss-user", Limit: limit}}, Accounts: accounts(7, limit)}
		var held []coord.Held
		var before string
		for i := range limit {
			h := fmt.Sprintf("running-%d", i)
			id, g := grantOf(t, a, h, req)
			if id != 7 {
				t.Fatalf("holder %s was not granted: %+v", h, g)
			}
			before = g.Epoch
			held = append(held, coord.Held{Key: "loss-user", Holder: h}, coord.Held{Key: acctKey(7), Holder: h})
		}
		wipe()

		// Nothing is admitted anywhere until the window closes, though the sets are empty.
		g, err := b.AcquireAccount(ctx, "newcomer", longTTL, req)
		if err != nil || g.Index != -1 || g.BaseFull != -1 || g.Recovering <= 0 || g.Recovering > coord.RecoveryWindow {
			t.Fatalf("AcquireAccount right after the loss = %+v, %v; want nothing granted, recovering", g, err)
		}
		if g.Epoch == before || g.Epoch == "" {
			t.Fatalf("the epoch after the loss is %q, before %q: want a new one", g.Epoch, before)
		}
		wantCount(t, b, acctKey(7), 0)
		// Wait queues are not gated.
		ok, _, err := b.AcquireSlots(ctx, "newcomer", longTTL, coord.SlotReq{Key: "loss-queue", Limit: 5})
		mustOK(t, "a queue place while recovering", ok, err)

		// Polling the epoch registers nothing.
		if e := epochOf(t, b); e != g.Epoch {
			t.Fatalf("PollEpoch after the loss = %q, want %q", e, g.Epoch)
		}
		wantCount(t, b, acctKey(7), 0)

		// Node a sees the new epoch and registers its holders again, expired or not.
		after, err := a.RefreshSlots(ctx, longTTL, before, held)
		if err != nil || after != g.Epoch {
			t.Fatalf("RefreshSlots under the old epoch = %q, %v; want the new epoch %q", after, err, g.Epoch)
		}
		wantCount(t, b, acctKey(7), limit)
		wantCount(t, b, "loss-user", limit)

		// Once the window closes the sets count the running requests: still full.
		deadline := time.Now().Add(patience)
		for {
			g, err = b.AcquireAccount(ctx, "newcomer", longTTL, req)
			if err != nil {
				t.Fatalf("AcquireAccount: %v", err)
			}
			if g.Recovering == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still recovering after %v: %+v", patience, g)
			}
			time.Sleep(min(g.Recovering, 100*time.Millisecond))
		}
		if g.Index != -1 || g.BaseFull != 0 {
			t.Fatalf("after the window a newcomer got %+v; want the user's set full", g)
		}
		if err := a.ReleaseSlots(ctx, "running-0", "loss-user", acctKey(7)); err != nil {
			t.Fatalf("ReleaseSlots: %v", err)
		}
		if id, g := grantOf(t, b, "newcomer", req); id != 7 {
			t.Fatalf("after a release the newcomer got %+v", g)
		}
		wantCount(t, a, acctKey(7), limit)

		// Under the current epoch a refresh extends live holders only, as before.
		if e, err := a.RefreshSlots(ctx, longTTL, g.Epoch, []coord.Held{{Key: "never-held", Holder: "x"}}); err != nil || e != g.Epoch {
			t.Fatalf("RefreshSlots under the current epoch = %q, %v", e, err)
		}
		wantCount(t, a, "never-held", 0)
	})

	t.Run("WindowClosesOnceEveryNodeRegistered", func(t *testing.T) {
		a, b, wipe := newPair(t)
		req := coord.AccountReq{Accounts: accounts(8, 1)}
		id, g := grantOf(t, a, "long-running", req)
		if id != 8 {
			t.Fatalf("not granted: %+v", g)
		}
		before := g.Epoch
		epochOf(t, b)
		wipe()
		g, err := b.AcquireAccount(ctx, "newcomer", longTTL, req)
		if err != nil || g.Recovering <= 0 {
			t.Fatalf("AcquireAccount right after the loss = %+v, %v; want recovering", g, err)
		}
		// Every node registers what it holds (b nothing) under the new epoch: the window
		// then closes as soon as it has lasted coord.MinRecoveryWindow, not at its bound.
		if _, err := a.RefreshSlots(ctx, longTTL, before, []coord.Held{{Key: acctKey(8), Holder: "long-running"}}); err != nil {
			t.Fatalf("RefreshSlots a: %v", err)
		}
		if _, err := b.RefreshSlots(ctx, longTTL, before, nil); err != nil {
			t.Fatalf("RefreshSlots b: %v", err)
		}
		g, err = b.AcquireAccount(ctx, "newcomer", longTTL, req)
		if err != nil || g.Index != -1 || g.Recovering > coord.MinRecoveryWindow {
			t.Fatalf("AcquireAccount once every node registered = %+v, %v; want at most %v left", g, err, coord.MinRecoveryWindow)
		}
		deadline := time.Now().Add(patience)
		for g.Recovering > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("still recovering after %v: %+v", patience, g)
			}
			time.Sleep(g.Recovering)
			if g, err = b.AcquireAccount(ctx, "newcomer", longTTL, req); err != nil {
				t.Fatalf("AcquireAccount: %v", err)
			}
		}
		// The account is full: its holder was registered again.
		if g.Index != -1 {
			t.Fatalf("after the window a newcomer got %+v; want the account full", g)
		}
	})
}
