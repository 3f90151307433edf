package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// usageRow is a balance-billed ledger row of user u at time at.
func usageRow(u *store.User, at time.Time, charged store.Nanos) store.Usage {
	return store.Usage{RequestID: "req_" + unique(), UserID: u.ID, APIKeyID: 1, AccountID: 1, GroupID: 1,
		Platform: store.PlatformAnthropic, Model: "claude-sonnet-4-5", UpstreamModel: "claude-sonnet-4-5-20250929",
		InputTokens: 10, OutputTokens: 20, CacheCreation5mTokens: 3, CacheCreation1hTokens: 4, CacheReadTokens: 5,
		Cost: charged, RateMultiplierPPM: 1_000_000, Charged: charged, BillingType: store.BillingBalance,
		Stream: true, StatusCode: 200, DurationMS: 1200, FirstByteMS: 300, CreatedAt: at}
}

func balanceOf(t *testing.T, s store.Store, id int64) store.Nanos {
	t.Helper()
	u, err := s.GetUser(ctxT(t), id)
	must(t, "GetUser", err)
	return u.Balance
}

func testRecordUsage(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)

	t.Run("NewRowsAreWrittenAndDebitTheBalance", func(t *testing.T) {
		u := MustUser(t, s, func(u *store.User) { u.Balance = 10_000 })
		other := MustUser(t, s, func(u *store.User) { u.Balance = 10_000 })
		rows := []store.Usage{usageRow(u, base, 1_234), usageRow(other, base, 100), usageRow(u, base.Add(time.Second), 66)}
		res, err := s.RecordUsage(ctx, rows)
		must(t, "RecordUsage", err)
		for i, r := range res {
			equal(t, fmt.Sprintf("result %d", i), r, store.RecordResult{RequestID: rows[i].RequestID, Inserted: true})
		}
		equal(t, "balances", []store.Nanos{balanceOf(t, s, u.ID), balanceOf(t, s, other.ID)}, []store.Nanos{8_700, 9_900})
		list, total, err := s.ListUsage(ctx, store.UsageFilter{UserID: u.ID}, store.Page{})
		must(t, "ListUsage", err)
		equal(t, "total", total, 2)
		if rows[2].ID == 0 {
			t.Fatal("RecordUsage did not set the ID of an inserted row")
		}
		equal(t, "newest row read back", list[0], rows[2])
	})

	t.Run("SameRequestIDAgainChangesNothing", func(t *testing.T) {
		u := MustUser(t, s, func(u *store.User) { u.Balance = 1_000 })
		row := usageRow(u, base, 400)
		_, err := s.RecordUsage(ctx, []store.Usage{row})
		must(t, "RecordUsage", err)
		again := row
		again.Charged, again.OutputTokens = 999, 999
		res, err := s.RecordUsage(ctx, []store.Usage{again, usageRow(u, base, 1)})
		must(t, "RecordUsage again", err)
		equal(t, "results", []bool{res[0].Inserted, res[1].Inserted}, []bool{false, true})
		equal(t, "balance", balanceOf(t, s, u.ID), store.Nanos(599))
		list, total, _ := s.ListUsage(ctx, store.UsageFilter{UserID: u.ID}, store.Page{})
		equal(t, "rows", total, 2)
		for _, r := range list {
			if r.RequestID == row.RequestID && r.OutputTokens != row.OutputTokens {
				t.Fatalf("the repeated row overwrote the first: %+v", r)
			}
		}
	})

	t.Run("RepeatInsideOneBatchCountsOnce", func(t *testing.T) {
		u := MustUser(t, s, func(u *store.User) { u.Balance = 1_000 })
		row := usageRow(u, base, 300)
		res, err := s.RecordUsage(ctx, []store.Usage{row, row})
		must(t, "RecordUsage", err)
		equal(t, "results", []bool{res[0].Inserted, res[1].Inserted}, []bool{true, false})
		equal(t, "balance", balanceOf(t, s, u.ID), store.Nanos(700))
	})

	t.Run("BadRowFailsTheWholeBatch", func(t *testing.T) {
		u := MustUser(t, s, func(u *store.User) { u.Balance = 1_000 })
		good, noID, badBilling := usageRow(u, base, 10), usageRow(u, base, 10), usageRow(u, base, 10)
		noID.RequestID = ""
		badBilling.BillingType = "barter"
		for _, bad := range []store.Usage{noID, badBilling} {
			_, err := s.RecordUsage(ctx, []store.Usage{good, bad})
			wantErr(t, "RecordUsage", err, store.ErrInvalid)
		}
		_, total, _ := s.ListUsage(ctx, store.UsageFilter{UserID: u.ID}, store.Page{})
		equal(t, "rows written", total, 0)
		equal(t, "balance", balanceOf(t, s, u.ID), store.Nanos(1_000))
	})

	t.Run("EmptyBatchDoesNothing", func(t *testing.T) {
		res, err := s.RecordUsage(ctx, nil)
		must(t, "RecordUsage", err)
		equal(t, "results", len(res), 0)
	})

	t.Run("RowOfADeletedUserIsStillRecorded", func(t *testing.T) {
		u := MustUser(t, s)
		must(t, "DeleteUser", s.DeleteUser(ctx, u.ID))
		res, err := s.RecordUsage(ctx, []store.Usage{usageRow(u, base, 5)})
		must(t, "RecordUsage", err)
		equal(t, "inserted", res[0].Inserted, true)
	})

	t.Run("SubscriptionWindowsAccumulateAndRestart", func(t *testing.T) {
		u := MustUser(t, s, func(u *store.User) { u.Balance = 500 })
		g := MustGroup(t, s, store.BillingSubscription)
		sub := &store.Subscription{UserID: u.ID, GroupID: g.ID, StartsAt: base, ExpiresAt: base.Add(90 * 24 * time.Hour)}
		must(t, "CreateSubscription", s.CreateSubscription(ctx, sub))
		row := func(after time.Duration, charged store.Nanos) store.Usage {
			r := usageRow(u, base.Add(after), charged)
			r.GroupID, r.BillingType = g.ID, store.BillingSubscription
			return r
		}
		check := func(what string, daily, weekly, monthly store.Nanos, dStart, wStart, mStart time.Duration) {
			t.Helper()
			got, err := s.GetSubscription(ctx, u.ID, g.ID)
			must(t, "GetSubscription", err)
			equal(t, what+": used", []store.Nanos{got.DailyUsed, got.WeeklyUsed, got.MonthlyUsed}, []store.Nanos{daily, weekly, monthly})
			equal(t, what+": starts", []time.Time{got.DailyStart, got.WeeklyStart, got.MonthlyStart},
				[]time.Time{base.Add(dStart), base.Add(wStart), base.Add(mStart)})
		}
		day := 24 * time.Hour
		_, err := s.RecordUsage(ctx, []store.Usage{row(time.Hour, 10), row(2*time.Hour, 5)})
		must(t, "RecordUsage", err)
		check("same day", 15, 15, 15, 0, 0, 0)
		_, err = s.RecordUsage(ctx, []store.Usage{row(day, 7)}) // exactly one day later: the daily window restarts
		must(t, "RecordUsage", err)
		check("next day", 7, 22, 22, day, 0, 0)
		// One batch crossing the weekly and the monthly boundary: rows apply in order.
		_, err = s.RecordUsage(ctx, []store.Usage{row(8*day, 1), row(8*day+time.Hour, 2), row(31*day, 4)})
		must(t, "RecordUsage", err)
		check("month later", 4, 4, 4, 31*day, 31*day, 31*day)
		equal(t, "balance untouched by subscription billing", balanceOf(t, s, u.ID), store.Nanos(500))
	})

	t.Run("ConcurrentRecordsOfOneRequestIDChargeOnce", func(t *testing.T) {
		s := open(t)
		u := MustUser(t, s, func(u *store.User) { u.Balance = 1_000_000 })
		row := usageRow(u, base, 777)
		const writers = 16
		inserted := make([]bool, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				res, err := s.RecordUsage(ctx, []store.Usage{row})
				if err != nil {
					t.Errorf("RecordUsage: %v", err)
					return
				}
				inserted[i] = res[0].Inserted
			})
		}
		wg.Wait()
		n := 0
		for _, ok := range inserted {
			if ok {
				n++
			}
		}
		equal(t, "writers told they inserted", n, 1)
		_, total, _ := s.ListUsage(ctx, store.UsageFilter{}, store.Page{})
		equal(t, "ledger rows", total, 1)
		equal(t, "balance", balanceOf(t, s, u.ID), store.Nanos(1_000_000-777))
	})

	t.Run("OverlappingBatchesInAnyOrderChargeEachRowOnce", func(t *testing.T) {
		s := open(t)
		users := []*store.User{MustUser(t, s), MustUser(t, s)}
		var rows []store.Usage
		for i := range 40 {
			rows = append(rows, usageRow(users[i%2], base, store.Nanos(i+1)))
		}
		const writers = 8
		inserted := make([]int, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				batch := slices.Clone(rows)
				if w%2 == 1 {
					slices.Reverse(batch)
				}
				rand.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
				res, err := s.RecordUsage(ctx, batch)
				if err != nil {
					t.Errorf("RecordUsage: %v", err)
					return
				}
				for _, r := range res {
					if r.Inserted {
						inserted[w]++
					}
				}
			})
		}
		wg.Wait()
		total := 0
		for _, n := range inserted {
			total += n
		}
		equal(t, "rows inserted across writers", total, len(rows))
		equal(t, "sum of balances", balanceOf(t, s, users[0].ID)+balanceOf(t, s, users[1].ID), -store.Nanos(40*41/2))
	})

	t.Run("ConcurrentBatchesChargeEveryRowExactly", func(t *testing.T) {
		s := open(t)
		users := []*store.User{MustUser(t, s), MustUser(t, s), MustUser(t, s)}
		const writers, batches, perBatch = 6, 5, 8
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for b := range batches {
					var rows []store.Usage
					for i := range perBatch {
						rows = append(rows, usageRow(users[(w+b+i)%len(users)], base, store.Nanos(1+i)))
					}
					if _, err := s.RecordUsage(ctx, rows); err != nil {
						t.Errorf("RecordUsage: %v", err)
					}
				}
			})
		}
		wg.Wait()
		var sum store.Nanos
		for _, u := range users {
			sum += balanceOf(t, s, u.ID)
		}
		// Every batch charges 1+2+…+perBatch.
		want := -store.Nanos(writers * batches * perBatch * (perBatch + 1) / 2)
		equal(t, "sum of balances", sum, want)
		tot, err := s.UsageTotals(ctx, store.UsageFilter{})
		must(t, "UsageTotals", err)
		equal(t, "ledger", []any{tot.Requests, tot.Charged}, []any{int64(writers * batches * perBatch), -want})
	})
}

func testUsageQueries(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)
	a, b := MustUser(t, s), MustUser(t, s)
	day := 24 * time.Hour
	mk := func(u *store.User, at time.Duration, model string, key, account, group int64) store.Usage {
		r := usageRow(u, base.Add(at), 100)
		r.Model, r.APIKeyID, r.AccountID, r.GroupID = model, key, account, group
		return r
	}
	rows := []store.Usage{
		mk(a, 0, "m1", 11, 21, 31),
		mk(a, time.Hour, "m2", 11, 22, 31),
		mk(a, day, "m1", 12, 21, 32),
		mk(b, day+time.Hour, "m1", 13, 22, 31),
		mk(b, 2*day, "m2", 13, 21, 31),
	}
	_, err := s.RecordUsage(ctx, rows)
	must(t, "RecordUsage", err)

	ids := func(list []store.Usage) []int64 {
		var out []int64
		for _, u := range list {
			out = append(out, u.ID)
		}
		return out
	}
	cases := []struct {
		name string
		f    store.UsageFilter
		want []int // indexes into rows, newest first
	}{
		{"NoFilterListsAllNewestFirst", store.UsageFilter{}, []int{4, 3, 2, 1, 0}},
		{"ByUser", store.UsageFilter{UserID: a.ID}, []int{2, 1, 0}},
		{"ByKey", store.UsageFilter{APIKeyID: 13}, []int{4, 3}},
		{"ByAccount", store.UsageFilter{AccountID: 21}, []int{4, 2, 0}},
		{"ByGroup", store.UsageFilter{GroupID: 32}, []int{2}},
		{"ByModel", store.UsageFilter{Model: "m2"}, []int{4, 1}},
		{"FromIsInclusiveToExclusive", store.UsageFilter{From: base.Add(time.Hour), To: base.Add(2 * day)}, []int{3, 2, 1}},
		{"Combined", store.UsageFilter{UserID: b.ID, Model: "m1"}, []int{3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			list, total, err := s.ListUsage(ctx, c.f, store.Page{})
			must(t, "ListUsage", err)
			var want []int64
			for _, i := range c.want {
				want = append(want, rows[i].ID)
			}
			equal(t, "ids", ids(list), want)
			equal(t, "total", total, len(want))
		})
	}

	t.Run("PagesWithTotal", func(t *testing.T) {
		list, total, err := s.ListUsage(ctx, store.UsageFilter{}, store.Page{Offset: 1, Limit: 2})
		must(t, "ListUsage", err)
		equal(t, "page", []any{ids(list), total}, []any{[]int64{rows[3].ID, rows[2].ID}, 5})
	})

	t.Run("TotalsSumEveryBucket", func(t *testing.T) {
		tot, err := s.UsageTotals(ctx, store.UsageFilter{UserID: a.ID})
		must(t, "UsageTotals", err)
		equal(t, "totals", tot, store.DailyModelUsage{Requests: 3, InputTokens: 30, OutputTokens: 60,
			CacheCreationTokens: 21, CacheReadTokens: 15, Cost: 300, Charged: 300})
		tot, err = s.UsageTotals(ctx, store.UsageFilter{Model: "none"})
		must(t, "UsageTotals", err)
		equal(t, "empty totals", tot, store.DailyModelUsage{})
	})

	t.Run("DailyByModelGroupsPerUTCDay", func(t *testing.T) {
		got, err := s.DailyUsageByModel(ctx, store.UsageFilter{})
		must(t, "DailyUsageByModel", err)
		d0, d1, d2 := base.Format("2006-01-02"), base.Add(day).Format("2006-01-02"), base.Add(2*day).Format("2006-01-02")
		var keys []string
		for _, r := range got {
			keys = append(keys, fmt.Sprintf("%s/%s/%d/%d", r.Day, r.Model, r.Requests, r.Charged))
		}
		equal(t, "days", keys, []string{d0 + "/m1/1/100", d0 + "/m2/1/100", d1 + "/m1/2/200", d2 + "/m2/1/100"})
		got, err = s.DailyUsageByModel(ctx, store.UsageFilter{UserID: b.ID, From: base.Add(2 * day)})
		must(t, "DailyUsageByModel", err)
		equal(t, "filtered", got, []store.DailyModelUsage{{Day: d2, Model: "m2", Requests: 1, InputTokens: 10,
			OutputTokens: 20, CacheCreationTokens: 7, CacheReadTokens: 5, Cost: 100, Charged: 100}})
	})
}
