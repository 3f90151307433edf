package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// outcomeFlushInterval is how often a node adds its request counts to the store: the admin
// dashboard's error rate lags by at most this, and the store sees one small write per
// interval instead of one per request.
const outcomeFlushInterval = 10 * time.Second

// outcomeKey is one UTC day and outcome.
type outcomeKey struct{ day, outcome string }

// outcomeTally counts this node's finished requests by day and outcome until the next flush.
// What it holds is a statistic, not money: counts not yet flushed when a node dies are lost.
type outcomeTally struct {
	mu     sync.Mutex
	counts map[outcomeKey]int64
}

func (t *outcomeTally) add(at time.Time, outcome string) {
	t.mu.Lock()
	if t.counts == nil {
		t.counts = make(map[outcomeKey]int64)
	}
	t.counts[outcomeKey{at.UTC().Format(time.DateOnly), outcome}]++
	t.mu.Unlock()
}

// take empties the tally and returns what it held.
func (t *outcomeTally) take() []store.DailyOutcome {
	t.mu.Lock()
	defer t.mu.Unlock()
	rows := make([]store.DailyOutcome, 0, len(t.counts))
	for k, n := range t.counts {
		rows = append(rows, store.DailyOutcome{Day: k.day, Outcome: k.outcome, Requests: n})
	}
	t.counts = nil
	return rows
}

// giveBack returns rows a failed flush could not write, for the next one.
func (t *outcomeTally) giveBack(rows []store.DailyOutcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.counts == nil {
		t.counts = make(map[outcomeKey]int64)
	}
	for _, r := range rows {
		t.counts[outcomeKey{r.Day, r.Outcome}] += r.Requests
	}
}

// flushOutcomes adds the tally to the store; on failure the counts wait for the next flush.
func (g *Gateway) flushOutcomes(ctx context.Context) {
	g.flushAccountErrors(ctx)
	rows := g.outcomes.take()
	if len(rows) == 0 {
		return
	}
	if err := g.store.AddRequestOutcomes(ctx, rows); err != nil {
		g.outcomes.giveBack(rows)
		g.log.WarnContext(ctx, "request outcome counts not written; retrying at the next flush", "err", err)
	}
}

// reportOutcomes flushes the tally every outcomeFlushInterval until ctx ends.
func (g *Gateway) reportOutcomes(ctx context.Context) {
	t := time.NewTicker(outcomeFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.flushOutcomes(ctx)
		}
	}
}
