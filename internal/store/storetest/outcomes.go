package storetest

import (
	"sync"
	"testing"

	"github.com/fluxcode/fluxcode/internal/store"
)

// testRequestOutcomes: counts add up per day and outcome, also when nodes add at once, and
// read back by day range in order.
func testRequestOutcomes(t *testing.T, open Open) {
	s := open(t)
	ctx := ctxT(t)
	must(t, "AddRequestOutcomes none", s.AddRequestOutcomes(ctx, nil))
	must(t, "AddRequestOutcomes", s.AddRequestOutcomes(ctx, []store.DailyOutcome{
		{Day: "2026-03-13", Outcome: "ok", Requests: 5},
		{Day: "2026-03-14", Outcome: "ok", Requests: 7},
		{Day: "2026-03-14", Outcome: "upstream_error", Requests: 1},
		{Day: "2026-03-16", Outcome: "ok", Requests: 1},
	}))
	// Eight nodes add to the same counts at once, half of them listing the rows the other way
	// round (a node's tally is a map): every addition counts, and none deadlocks.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		rows := []store.DailyOutcome{
			{Day: "2026-03-14", Outcome: "ok", Requests: 2},
			{Day: "2026-03-14", Outcome: "rejected_balance", Requests: 1},
		}
		if i%2 == 1 {
			rows[0], rows[1] = rows[1], rows[0]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.AddRequestOutcomes(ctx, rows)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, "concurrent AddRequestOutcomes", err)
	}
	got, err := s.DailyRequestOutcomes(ctx, "2026-03-14", "2026-03-15")
	must(t, "DailyRequestOutcomes", err)
	equal(t, "counts of 14-15 March", got, []store.DailyOutcome{
		{Day: "2026-03-14", Outcome: "ok", Requests: 23},
		{Day: "2026-03-14", Outcome: "rejected_balance", Requests: 8},
		{Day: "2026-03-14", Outcome: "upstream_error", Requests: 1},
	})
	got, err = s.DailyRequestOutcomes(ctx, "2026-03-17", "2026-03-20")
	must(t, "DailyRequestOutcomes of empty days", err)
	equal(t, "no counts", len(got), 0)
}
