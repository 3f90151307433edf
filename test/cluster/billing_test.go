package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/mockupstream"
)

// startBalance is what newTenant credits: $100 in nano-USD.
const startBalance = 100_000_000_000

// billBound is how long the harness waits for the nodes' billing batches to reach the
// ledger. A complete answer is committed before its client sees its end, so this only
// matters for partial rows and after a PostgreSQL outage (a failed write is retried at least
// every second).
const billBound = 60 * time.Second

// ledgerRow is one usage_ledger row, as the harness reads it.
type ledgerRow struct {
	charged int64
	usage   mockupstream.Usage
	partial bool
}

// ledger reads the user's rows by request id, with the user's balance and the sum of their
// charges, all from one snapshot.
func (c *cluster) ledger(t testing.TB, userID int64) (rows map[string]ledgerRow, balance, charged int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := c.db.Begin(ctx)
	if err != nil {
		t.Fatalf("read the ledger: %v", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		t.Fatalf("read the ledger: %v", err)
	}
	if err := tx.QueryRow(ctx, `SELECT balance, (SELECT coalesce(sum(charged), 0)::bigint FROM usage_ledger WHERE user_id = $1)
		FROM users WHERE id = $1`, userID).Scan(&balance, &charged); err != nil {
		t.Fatalf("read the balance: %v", err)
	}
	r, err := tx.Query(ctx, `SELECT request_id, charged, input_tokens, output_tokens, cache_creation_5m_tokens,
		cache_creation_1h_tokens, cache_read_tokens, partial FROM usage_ledger WHERE user_id = $1`, userID)
	if err != nil {
		t.Fatalf("read the ledger: %v", err)
	}
	defer r.Close()
	rows = map[string]ledgerRow{}
	for r.Next() {
		var id string
		var row ledgerRow
		u := &row.usage
		if err := r.Scan(&id, &row.charged, &u.Input, &u.Output, &u.Cache5m, &u.Cache1h, &u.CacheRead, &row.partial); err != nil {
			t.Fatalf("read the ledger: %v", err)
		}
		rows[id] = row
	}
	if err := r.Err(); err != nil {
		t.Fatalf("read the ledger: %v", err)
	}
	return rows, balance, charged
}

// clock formats the times in failure messages.
const clock = "15:04:05.000"

// billing is what checkBilling found.
type billing struct {
	rows  map[string]ledgerRow
	usage mockupstream.Usage // summed over the rows
}

// checkBilling checks invariant 3 for a tenant whose requests are outs: every completed
// request is in the ledger exactly once under the id its client saw, no row belongs to a
// request no client made, and the balance fell by exactly the sum of the charges. With
// exact, the rows are exactly the completed requests (no partial ones either).
func (c *cluster) checkBilling(t testing.TB, tn *tenant, outs []outcome, exact bool) billing {
	t.Helper()
	completed := map[string]bool{}
	seen := map[string]bool{}
	ended := map[string]time.Time{}
	for _, o := range outs {
		if o.requestID == "" {
			if o.complete {
				t.Errorf("a complete answer without %s", "X-Fluxcode-Request-Id")
			}
			continue
		}
		if seen[o.requestID] {
			t.Errorf("request id %s answered twice", o.requestID)
		}
		seen[o.requestID] = true
		ended[o.requestID] = o.end
		if o.complete {
			completed[o.requestID] = true
		}
	}

	// Rows reach the ledger in per-node batches: wait until every completed request has one.
	var rows map[string]ledgerRow
	var balance, charged int64
	var missing []string
	deadline := time.Now().Add(billBound)
	for {
		rows, balance, charged = c.ledger(t, tn.userID)
		missing = missing[:0]
		for id := range completed {
			if _, ok := rows[id]; !ok {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(missing) > 0 {
		var list []string
		for _, id := range first(missing, 10) {
			list = append(list, id+" (completed at "+ended[id].Format(clock)+")")
		}
		t.Errorf("%d of %d completed requests are not in the ledger after %s: %s",
			len(missing), len(completed), billBound, strings.Join(list, ", "))
	}
	var sum int64
	var usage mockupstream.Usage
	for id, r := range rows {
		if !seen[id] {
			t.Errorf("ledger row %s belongs to no request a client made", id)
		}
		if exact && !completed[id] {
			t.Errorf("ledger row %s (partial=%v) is not a completed request", id, r.partial)
		}
		if completed[id] && r.partial {
			t.Errorf("completed request %s is billed as partial", id)
		}
		sum += r.charged
		usage = usage.Add(r.usage)
	}
	if len(rows) > 0 && sum <= 0 {
		t.Errorf("%d ledger rows charge nothing in total", len(rows))
	}
	if sum != charged || startBalance-balance != sum {
		t.Errorf("balance fell by %d nano-USD; the ledger charges %d", startBalance-balance, sum)
	}
	t.Logf("%s: %d requests, %d completed, %d ledger rows, charged %d nano-USD",
		tn.name, len(outs), len(completed), len(rows), sum)
	return billing{rows: rows, usage: usage}
}

// checkMockAgrees checks that the ledger's tokens are what the mock reported for the
// tenant's accounts (each request billed once, none lost, none invented).
func (c *cluster) checkMockAgrees(t testing.TB, tn *tenant, b billing) {
	t.Helper()
	var reported mockupstream.Usage
	var completed int64
	for _, a := range tn.accounts {
		s := c.mock.Stats(a.upstreamKey)
		reported = reported.Add(s.Usage)
		completed += s.Completed
	}
	if reported != b.usage {
		t.Errorf("ledger tokens %+v, the mock reported %+v", b.usage, reported)
	}
	if completed != int64(len(b.rows)) {
		t.Errorf("the mock completed %d answers; the ledger has %d rows", completed, len(b.rows))
	}
}

// checkPeaks checks that no account of tn ever had more requests in flight at the mock than
// its concurrency limit, and that the load did reach the limit (else it proved nothing).
func (c *cluster) checkPeaks(t testing.TB, tn *tenant) {
	t.Helper()
	for _, a := range tn.accounts {
		if a.concurrency <= 0 {
			continue
		}
		peak := c.mock.Stats(a.upstreamKey).PeakInFlight
		if peak > int64(a.concurrency) {
			t.Errorf("account %d: %d requests in flight at once, limit %d", a.id, peak, a.concurrency)
		}
		if peak < int64(a.concurrency) {
			t.Errorf("account %d: the load reached only %d of its %d slots, so the limit was not tested", a.id, peak, a.concurrency)
		}
		t.Logf("account %d: peak in flight %d, limit %d", a.id, peak, a.concurrency)
	}
}

// liveSlots counts the members of every slot set that are alive by Redis's clock: the
// concurrency slots and wait-queue places some request holds.
func (c *cluster) liveSlots(ctx context.Context) (int64, error) {
	alive, err := c.aliveHolders(ctx)
	return int64(len(alive)), err
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
