package jobs_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord/memory"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/jobs"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/storetest"
)

// The three maintenance jobs on one runner: each does its work, and each run is recorded
// with its result.
func TestMaintenanceJobsDoTheirWorkAndRecordIt(t *testing.T) {
	ctx := t.Context()
	c := memory.New()
	defer c.Close()
	st := gatewaytest.OpenSQLite(t, gatewaytest.NewKeys(t))
	now := time.Now().UTC()

	u := storetest.MustUser(t, st, func(u *store.User) { u.Balance = 1_000_000 })
	g := storetest.MustGroup(t, st, store.BillingSubscription)
	if err := st.CreateSubscription(ctx, &store.Subscription{UserID: u.ID, GroupID: g.ID,
		StartsAt: now.Add(-72 * time.Hour), ExpiresAt: now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var rows []store.Usage
	for i := range jobs.RetentionBatch + 5 { // more than one batch is old
		rows = append(rows, usageRow(u.ID, now.AddDate(0, 0, -40).Add(time.Duration(i)*time.Second)))
	}
	fresh := usageRow(u.ID, now.Add(-time.Hour))
	if _, err := st.RecordUsage(ctx, append(rows, fresh)); err != nil {
		t.Fatal(err)
	}
	// A login's refresh lock, used long ago and free since.
	if ok, _, err := c.AcquireLease(ctx, "login:refresh:7", "n1", time.Minute); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := c.ReleaseLease(ctx, "login:refresh:7", "n1"); err != nil {
		t.Fatal(err)
	}
	// The clean-up below removes fences idle for over 1 ms; its first run may come at once.
	time.Sleep(20 * time.Millisecond)

	var told []int64
	every := 200 * time.Millisecond
	r := jobs.New(c, st, "n1", nil)
	r.Start(
		jobs.LedgerRetention(st, 30, every, time.Now),
		jobs.SubscriptionExpiry(st, func(_ context.Context, id int64) { told = append(told, id) }, every, time.Now),
		jobs.CoordCleanup(c, time.Millisecond, every),
	)
	var runs []store.JobRun
	waitFor(t, func() bool {
		var err error
		runs, err = st.ListJobRuns(ctx)
		return err == nil && len(runs) == 3
	})
	r.Close()

	results := map[string]string{}
	for _, run := range runs {
		if run.Error != "" || run.Node != "n1" {
			t.Fatalf("run %+v", run)
		}
		results[run.Name] = run.Result
	}
	if got := results[jobs.SubscriptionExpiryJob]; got != "1 subscriptions expired" {
		t.Errorf("expiry result %q", got)
	}
	if got := results[jobs.CoordCleanupJob]; got != "1 idle lease fences removed" {
		t.Errorf("clean-up result %q", got)
	}
	sub, err := st.GetSubscription(ctx, u.ID, g.ID)
	if err != nil || sub.Status != store.StatusExpired || !slices.Equal(told, []int64{u.ID}) {
		t.Fatalf("subscription %+v (%v), owners told %v", sub, err, told)
	}
	left, total, err := st.ListUsage(ctx, store.UsageFilter{UserID: u.ID}, store.Page{})
	if err != nil || total != 1 || left[0].RequestID != fresh.RequestID {
		t.Fatalf("ledger after retention: %d rows (%v), want only the fresh one", total, err)
	}
}

func TestRetentionOffKeepsEveryRow(t *testing.T) {
	st := gatewaytest.OpenSQLite(t, gatewaytest.NewKeys(t))
	u := storetest.MustUser(t, st)
	if _, err := st.RecordUsage(t.Context(), []store.Usage{usageRow(u.ID, time.Now().AddDate(-5, 0, 0))}); err != nil {
		t.Fatal(err)
	}
	res, err := jobs.LedgerRetention(st, 0, time.Minute, time.Now).Run(t.Context())
	if err != nil || res != "retention off: every ledger row is kept" {
		t.Fatalf("run: %q, %v", res, err)
	}
	if _, total, _ := st.ListUsage(t.Context(), store.UsageFilter{}, store.Page{}); total != 1 {
		t.Fatalf("%d rows left, want 1", total)
	}
}

func usageRow(userID int64, at time.Time) store.Usage {
	return store.Usage{RequestID: "req_" + at.Format(time.RFC3339Nano), UserID: userID, APIKeyID: 1, AccountID: 1,
		GroupID: 1, Platform: store.PlatformAnthropic, Model: "m", Cost: 1, RateMultiplierPPM: 1_000_000, Charged: 1,
		BillingType: store.BillingBalance, StatusCode: 200, CreatedAt: at}
}
