package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// testMaintenance covers what the cluster's maintenance jobs (package jobs) ask of the
// store: marking ended subscriptions expired, and deleting old ledger rows in batches.
func testMaintenance(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)

	t.Run("ExpireMarksOnlyActiveSubscriptionsThatEnded", func(t *testing.T) {
		u := MustUser(t, s)
		now := time.Now().UTC().Truncate(time.Microsecond)
		mk := func(status string, end time.Time) *store.Subscription {
			sub := &store.Subscription{UserID: u.ID, GroupID: MustGroup(t, s, store.BillingSubscription).ID,
				Status: status, StartsAt: now.Add(-48 * time.Hour), ExpiresAt: end}
			must(t, "CreateSubscription", s.CreateSubscription(ctx, sub))
			return sub
		}
		ended := mk(store.StatusActive, now.Add(-time.Minute))
		endsNow := mk(store.StatusActive, now)
		running := mk(store.StatusActive, now.Add(time.Hour))
		disabled := mk(store.StatusDisabled, now.Add(-time.Minute))

		got, err := s.ExpireSubscriptions(ctx, now)
		must(t, "ExpireSubscriptions", err)
		var ids []int64
		for _, sub := range got {
			if sub.Status != store.StatusExpired || sub.UserID != u.ID {
				t.Fatalf("returned %+v, want it expired", sub)
			}
			ids = append(ids, sub.ID)
		}
		slices.Sort(ids)
		equal(t, "expired ids", ids, []int64{ended.ID, endsNow.ID})
		for sub, want := range map[*store.Subscription]string{ended: store.StatusExpired, endsNow: store.StatusExpired,
			running: store.StatusActive, disabled: store.StatusDisabled} {
			stored, err := s.GetSubscription(ctx, u.ID, sub.GroupID)
			must(t, "GetSubscription", err)
			equal(t, "status", stored.Status, want)
		}
		again, err := s.ExpireSubscriptions(ctx, now)
		must(t, "ExpireSubscriptions again", err)
		equal(t, "second pass", len(again), 0)
	})

	t.Run("RedeemingDaysRevivesAnExpiredSubscription", func(t *testing.T) {
		u := MustUser(t, s)
		admin := MustUser(t, s, func(u *store.User) { u.Role = store.RoleAdmin })
		g := MustGroup(t, s, store.BillingSubscription)
		now := time.Now().UTC()
		must(t, "CreateSubscription", s.CreateSubscription(ctx, &store.Subscription{UserID: u.ID, GroupID: g.ID,
			StartsAt: now.Add(-48 * time.Hour), ExpiresAt: now.Add(-time.Hour)}))
		_, err := s.ExpireSubscriptions(ctx, now)
		must(t, "ExpireSubscriptions", err)
		codes := []store.RedeemCode{{Hash: randomHash(), Prefix: "rc-exp", Kind: store.RedeemSubscription,
			GroupID: g.ID, Days: 3, CreatedBy: admin.ID}}
		must(t, "CreateRedeemCodes", s.CreateRedeemCodes(ctx, codes))
		_, err = s.RedeemCode(ctx, codes[0].Hash, u.ID)
		must(t, "RedeemCode", err)
		sub, err := s.GetSubscription(ctx, u.ID, g.ID)
		must(t, "GetSubscription", err)
		if sub.Status != store.StatusActive || !sub.ExpiresAt.After(now.Add(71*time.Hour)) {
			t.Fatalf("after redeeming 3 days: %+v, want active until ~3 days from now", sub)
		}
	})

	t.Run("DeleteUsageBeforeGoesInBatchesOldestFirst", func(t *testing.T) {
		u := MustUser(t, s, func(u *store.User) { u.Balance = 1_000_000 })
		var rows []store.Usage
		for i := range 7 {
			rows = append(rows, usageRow(u, base.Add(time.Duration(i)*time.Hour), 10))
		}
		_, err := s.RecordUsage(ctx, rows)
		must(t, "RecordUsage", err)
		before := balanceOf(t, s, u.ID)
		cut := base.Add(5 * time.Hour) // rows 0–4 are older
		n, err := s.DeleteUsageBefore(ctx, cut, 3)
		must(t, "DeleteUsageBefore", err)
		equal(t, "first batch", n, int64(3))
		left, _, err := s.ListUsage(ctx, store.UsageFilter{UserID: u.ID}, store.Page{Limit: 200})
		must(t, "ListUsage", err)
		equal(t, "rows after one batch", len(left), 4)
		if oldest := left[len(left)-1]; !oldest.CreatedAt.Equal(rows[3].CreatedAt) {
			t.Fatalf("oldest row left is from %v, want the oldest three gone", oldest.CreatedAt)
		}
		n, err = s.DeleteUsageBefore(ctx, cut, 3)
		must(t, "DeleteUsageBefore", err)
		equal(t, "second batch", n, int64(2))
		n, err = s.DeleteUsageBefore(ctx, cut, 3)
		must(t, "DeleteUsageBefore", err)
		equal(t, "nothing older left", n, int64(0))
		totals, err := s.UsageTotals(ctx, store.UsageFilter{UserID: u.ID})
		must(t, "UsageTotals", err)
		equal(t, "requests counted after the deletion", totals.Requests, int64(2))
		equal(t, "balance untouched by the deletion", balanceOf(t, s, u.ID), before)
		_, err = s.DeleteUsageBefore(ctx, cut, 0)
		wantErr(t, "DeleteUsageBefore with no limit", err, store.ErrInvalid)
	})
}
