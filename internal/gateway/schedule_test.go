package gateway_test

import (
	"slices"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/store"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func acct(id int64, mutate func(*store.Account)) *store.Account {
	a := &store.Account{ID: id, Platform: store.PlatformAnthropic, Status: store.StatusActive, Schedulable: true, Priority: 50, Concurrency: 4}
	if mutate != nil {
		mutate(a)
	}
	return a
}

func ids(cands []gateway.Candidate) []int64 {
	out := make([]int64, len(cands))
	for i, c := range cands {
		out[i] = c.Account.ID
	}
	return out
}

func TestRank(t *testing.T) {
	later, earlier := now.Add(-time.Minute), now.Add(-time.Hour)
	past, future := now.Add(-time.Second), now.Add(time.Second)
	cases := []struct {
		name    string
		pool    []gateway.Candidate
		model   string
		exclude map[int64]bool
		want    []int64
	}{
		{"PriorityFirst", []gateway.Candidate{
			{Account: acct(1, func(a *store.Account) { a.Priority = 60 })},
			{Account: acct(2, func(a *store.Account) { a.Priority = 10 }), InFlight: 3},
			{Account: acct(3, nil)},
		}, "m", nil, []int64{2, 3, 1}},
		{"ThenLoadAsAFractionOfTheLimit", []gateway.Candidate{
			{Account: acct(1, func(a *store.Account) { a.Concurrency = 2 }), InFlight: 1},  // 1/2
			{Account: acct(2, func(a *store.Account) { a.Concurrency = 10 }), InFlight: 3}, // 3/10
			{Account: acct(3, func(a *store.Account) { a.Concurrency = 0 }), InFlight: 5},  // unlimited
			{Account: acct(4, nil), InFlight: 0},
		}, "m", nil, []int64{4, 3, 2, 1}},
		{"ThenLeastRecentlyUsed", []gateway.Candidate{
			{Account: acct(1, nil), LastUsed: later},
			{Account: acct(2, nil), LastUsed: earlier},
			{Account: acct(3, nil)}, // never used
		}, "m", nil, []int64{3, 2, 1}},
		{"OnlyAvailable", []gateway.Candidate{
			{Account: acct(1, func(a *store.Account) { a.Status = store.StatusError })},
			{Account: acct(2, func(a *store.Account) { a.Schedulable = false })},
			{Account: acct(3, func(a *store.Account) { a.RateLimitedUntil = &future })},
			{Account: acct(4, func(a *store.Account) { a.OverloadedUntil = &future })},
			{Account: acct(5, func(a *store.Account) { a.TempUnschedUntil = &future })},
			{Account: acct(6, func(a *store.Account) { a.RateLimitedUntil = &past })},
			{Account: acct(7, func(a *store.Account) { a.Platform = store.PlatformOpenAI })},
			{Account: acct(8, func(a *store.Account) { a.Status = store.StatusDisabled })},
		}, "m", nil, []int64{6}},
		{"ModelMapping", []gateway.Candidate{
			{Account: acct(1, func(a *store.Account) { a.ModelMapping = map[string]string{"other": ""} })},
			{Account: acct(2, func(a *store.Account) { a.ModelMapping = map[string]string{"m": "upstream-m"} })},
			{Account: acct(3, nil)},
		}, "m", nil, []int64{2, 3}},
		{"Excluded", []gateway.Candidate{
			{Account: acct(1, nil)}, {Account: acct(2, nil)},
		}, "m", map[int64]bool{1: true}, []int64{2}},
		{"IDBreaksTies", []gateway.Candidate{
			{Account: acct(9, nil)}, {Account: acct(3, nil)}, {Account: acct(5, nil)},
		}, "m", nil, []int64{3, 5, 9}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := gateway.Rank(c.pool, store.PlatformAnthropic, c.model, now, c.exclude)
			if !slices.Equal(ids(got), c.want) {
				t.Fatalf("ranked %v, want %v", ids(got), c.want)
			}
		})
	}
	t.Run("SetsUpstreamModel", func(t *testing.T) {
		got := gateway.Rank([]gateway.Candidate{
			{Account: acct(1, func(a *store.Account) { a.ModelMapping = map[string]string{"m": "upstream-m"} })},
			{Account: acct(2, func(a *store.Account) { a.ModelMapping = map[string]string{"m": ""}; a.Priority = 60 })},
		}, store.PlatformAnthropic, "m", now, nil)
		if len(got) != 2 || got[0].Model != "upstream-m" || got[1].Model != "m" {
			t.Fatalf("got %+v", got)
		}
	})
}
