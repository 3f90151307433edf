package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/jackc/pgx/v5"

	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// TestBillingSurvivesDatabaseOutage: usage that could not be written when PostgreSQL went
// away (the answers completed after BillCommitWait) is retried until it comes back, and
// lands in the ledger exactly once; graceful shutdown waits for it.
func TestBillingSurvivesDatabaseOutage(t *testing.T) {
	pg, st, d := ownPostgres(t)
	cfg := config()
	cfg.BillCommitWait = 100 * time.Millisecond // the answers do not wait for the database
	node := gatewaytest.Start(t, d, cfg, "node-1", nil)
	ten := gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{})
	gatewaytest.NewAccount(t, d, "up-outage", []int64{ten.Group.ID}, nil)
	before := gatewaytest.Balance(t, st, ten.User.ID)

	// The user's row locked by another session: no ledger write can commit, so the rows
	// are certain to be pending when PostgreSQL stops (which ends that session too).
	lock := lockUser(t, pg.DSN("outage"), ten.User.ID)
	client := sdk(node, ten.Secret)
	for i := range 5 {
		if _, err := client.Messages.New(context.Background(), params(fmt.Sprint("outage ", i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := node.Metric(t, "fluxcode_gateway_billing_uncommitted_answers_total", nil); n != 5 {
		t.Fatalf("%v answers completed before their commit, want all 5", n)
	}
	// A write fails for certain: the writer's session, waiting on the lock, is terminated.
	// (A fast shutdown alone cannot promise it: if PostgreSQL ends the lock holder's
	// session first, the waiting write may commit before its own session is ended.) The
	// writer retries and waits on the lock again; then PostgreSQL stops with it waiting.
	waitForLockWaiters(t, lock)
	if _, err := lock.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"+
		" WHERE datname = current_database() AND wait_event_type = 'Lock'"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for node.Metric(t, "fluxcode_gateway_billing_write_errors_total", nil) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the terminated write was not counted as a failure")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitForLockWaiters(t, lock)
	if n := gatewaytest.Balance(t, st, ten.User.ID); n != before {
		t.Fatalf("balance %d changed to %d while the rows could not commit", before, n)
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	lock.Close(context.Background())
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		closed <- node.Gateway.Close(ctx)
	}()
	// Let the writer meet the stopped server before it comes back.
	time.Sleep(300 * time.Millisecond)
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := rows(t, st, store.UsageFilter{UserID: ten.User.ID}, 5)
	var charged store.Nanos
	for _, r := range got {
		charged += r.Charged
	}
	if after := gatewaytest.Balance(t, st, ten.User.ID); before-after != charged || charged <= 0 {
		t.Fatalf("balance fell by %d, the ledger charged %d", before-after, charged)
	}
	if n := node.Metric(t, "fluxcode_gateway_billing_rows_total", map[string]string{"result": "written"}); n != 5 {
		t.Errorf("billing_rows_total{written} = %v, want 5", n)
	}
	if n := node.Metric(t, "fluxcode_gateway_requests_total", map[string]string{"op": "messages", "outcome": "ok"}); n != 5 {
		t.Errorf("requests_total{messages,ok} = %v, want 5", n)
	}
}

// waitForLockWaiters waits until a session of the lock's database waits on a lock: the
// ledger writer, blocked by lockUser.
func waitForLockWaiters(t *testing.T, lock *pgx.Conn) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := lock.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity"+
			" WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the ledger writer never waited on the locked user row")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockUser opens a session that locks the user's row (SELECT … FOR UPDATE in an open
// transaction) until it is closed or its server stops: every ledger write that charges the
// user waits meanwhile.
func lockUser(t *testing.T, dsn string, userID int64) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT id FROM users WHERE id = $1 FOR UPDATE", userID); err != nil {
		t.Fatal(err)
	}
	return conn
}

// ownPostgres is a node's dependencies on a PostgreSQL server of the test's own, which it
// may stop and start.
func ownPostgres(t *testing.T) (*testenv.Postgres, *sqlstore.DB, *gatewaytest.Deps) {
	t.Helper()
	pg := testenv.StartPostgres(t)
	if err := pg.CreateDB("outage"); err != nil {
		t.Fatal(err)
	}
	keys := gatewaytest.NewKeys(t)
	st, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: pg.DSN("outage"), Keys: keys, Logger: gatewaytest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return pg, st, gatewaytest.NewDeps(t, gatewaytest.Deps{Store: st, Keys: keys})
}

// TestNoWaitForARefusingDatabase: an answer that ends while PostgreSQL refuses connections
// does not wait for its commit (here BillCommitWait is an hour: only the refusal can end
// the wait); its row is written once PostgreSQL is back, exactly once.
func TestNoWaitForARefusingDatabase(t *testing.T) {
	pg, st, d := ownPostgres(t)
	cfg := config()
	cfg.BillCommitWait = time.Hour
	node := gatewaytest.Start(t, d, cfg, "node-1", nil)
	ten := gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{})
	tap := gatewaytest.NewTap(t, d.Mock)
	gatewaytest.NewAccount(t, d, "up-refused", []int64{ten.Group.ID}, func(a *store.Account) { a.BaseURL = tap.URL })
	release := tap.Hold(t, "answered while postgres is down")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a bound, not a speed
	defer cancel()
	type answer struct {
		text string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		client := sdk(node, ten.Secret)
		stream := client.Messages.NewStreaming(ctx, params("answered while postgres is down"))
		defer stream.Close()
		var msg anthropic.Message
		for stream.Next() {
			if err := msg.Accumulate(stream.Current()); err != nil {
				got <- answer{err: err}
				return
			}
		}
		text := ""
		if len(msg.Content) > 0 {
			text = msg.Content[0].Text
		}
		if msg.StopReason == "" {
			text = ""
		}
		got <- answer{text: text, err: stream.Err()}
	}()
	waitUntil(t, func() bool { return len(tap.Exchanges()) == 1 }) // admitted; held at the upstream
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	release()
	a := <-got
	if a.err != nil || a.text == "" {
		t.Fatalf("the stream did not complete while PostgreSQL was down: %v", a.err)
	}
	if n := node.Metric(t, "fluxcode_gateway_billing_uncommitted_answers_total", nil); n != 1 {
		t.Fatalf("billing_uncommitted_answers_total = %v, want 1", n)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	r := rows(t, st, store.UsageFilter{UserID: ten.User.ID}, 1)
	if r[0].Partial || r[0].Charged <= 0 {
		t.Fatalf("row %+v", r[0])
	}
}
