package sqlstore_test

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/storetest"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// A batch that bills balances only is one PostgreSQL statement, however many rows and users
// it has (the gateway commits every request before answering it, so this is what a request
// costs the database under load); sent again, it changes nothing.
func TestPostgresBalanceBatchIsOneStatement(t *testing.T) {
	db := MustOpen(t, testenv.PostgresDSN(t))
	ctx := t.Context()
	users := usersWithBalance(t, db, 10, 1_000_000)
	var rows []store.Usage
	for i := range 100 {
		u := users[i%len(users)]
		rows = append(rows, store.Usage{RequestID: fmt.Sprintf("one-stmt-%d", i), UserID: u.ID,
			Charged: store.Nanos(1 + i%len(users)), BillingType: store.BillingBalance, InputTokens: 3})
	}
	rows = append(rows, rows[0]) // a repeat inside the batch counts once

	before := db.Statements()
	res, err := db.RecordUsage(ctx, rows)
	must(t, err)
	if got := db.Statements() - before; got != 1 {
		t.Fatalf("a balance batch of %d rows sent %d statements, want 1", len(rows), got)
	}
	for i, r := range res {
		if want := i < 100; r.Inserted != want || r.RequestID != rows[i].RequestID {
			t.Fatalf("result %d = %+v, want inserted=%v", i, r, want)
		}
		if i < 100 && rows[i].ID == 0 {
			t.Fatalf("row %d: no ID set", i)
		}
	}
	for i, u := range users {
		got, err := db.GetUser(ctx, u.ID)
		must(t, err)
		if want := store.Nanos(1_000_000 - 10*(1+i)); got.Balance != want {
			t.Fatalf("user %d: balance %d, want %d", i, got.Balance, want)
		}
	}

	before = db.Statements()
	res, err = db.RecordUsage(ctx, rows[:100])
	must(t, err)
	if got := db.Statements() - before; got != 1 {
		t.Fatalf("the batch again sent %d statements, want 1", got)
	}
	for i, r := range res {
		if r.Inserted {
			t.Fatalf("row %d inserted twice", i)
		}
	}
	var sum int64
	for _, u := range users {
		got, err := db.GetUser(ctx, u.ID)
		must(t, err)
		sum += int64(got.Balance)
	}
	if want := int64(10*1_000_000 - 10*55); sum != want {
		t.Fatalf("balances sum to %d after the repeat, want %d", sum, want)
	}
}

// Balance batches from many writers at once, each naming the same users in its own order
// (as the nodes of a cluster do), all commit, and every charge lands once.
func TestPostgresConcurrentBalanceBatches(t *testing.T) {
	db := MustOpen(t, testenv.PostgresDSN(t))
	ctx := t.Context()
	users := usersWithBalance(t, db, 6, 0)
	const writers, batches = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				order := rand.Perm(len(users))
				rows := make([]store.Usage, 0, len(users))
				for j, k := range order {
					rows = append(rows, store.Usage{RequestID: fmt.Sprintf("conc-%d-%d-%d", w, b, j),
						UserID: users[k].ID, Charged: 7, BillingType: store.BillingBalance})
				}
				if _, err := db.RecordUsage(ctx, rows); err != nil {
					t.Errorf("writer %d batch %d: %v", w, b, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i, u := range users {
		got, err := db.GetUser(ctx, u.ID)
		must(t, err)
		if want := store.Nanos(-7 * writers * batches); got.Balance != want {
			t.Errorf("user %d: balance %d, want %d", i, got.Balance, want)
		}
	}
}

func usersWithBalance(t *testing.T, s store.Store, n int, balance store.Nanos) []*store.User {
	users := make([]*store.User, n)
	for i := range users {
		users[i] = storetest.MustUser(t, s, func(u *store.User) { u.Balance = balance })
	}
	return users
}

// A batch that charges one user takes a statement of its own: it bills like the general one
// (duplicates skipped, other users' free rows recorded and not charged), and PostgreSQL plans
// it once rather than on every commit, even among many users (where it keeps re-planning the
// general form, whose array of users it cannot size).
func TestPostgresOneUserBatchIsPlannedOnce(t *testing.T) {
	db := MustOpen(t, testenv.PostgresDSN(t))
	ctx := t.Context()
	users := usersWithBalance(t, db, 2, 1_000_000)
	_, err := db.RawDB().ExecContext(ctx, `INSERT INTO users (email, role, status, balance, created_at, updated_at)
		SELECT 'many-' || g || '@example.test', 'user', 'active', 0, now(), now() FROM generate_series(1, 20000) g`)
	must(t, err)
	_, err = db.RawDB().ExecContext(ctx, "ANALYZE users")
	must(t, err)

	const commits = 12 // more than the 5 custom plans PostgreSQL tries first
	var charged store.Nanos
	for i := range commits {
		batch := []store.Usage{
			{RequestID: fmt.Sprintf("one-%d", i), UserID: users[0].ID, Charged: store.Nanos(10 + i), BillingType: store.BillingBalance},
			{RequestID: fmt.Sprintf("free-%d", i), UserID: users[1].ID, BillingType: store.BillingBalance},
		}
		before := db.Statements()
		res, err := db.RecordUsage(ctx, batch)
		must(t, err)
		if got := db.Statements() - before; got != 1 {
			t.Fatalf("batch %d sent %d statements, want 1", i, got)
		}
		if !res[0].Inserted || !res[1].Inserted {
			t.Fatalf("batch %d: %+v, want both rows inserted", i, res)
		}
		charged += 10 + store.Nanos(i)
		res, err = db.RecordUsage(ctx, batch[:1]) // sent again: recorded and charged once
		must(t, err)
		if res[0].Inserted {
			t.Fatalf("batch %d: its row was inserted twice", i)
		}
	}
	for i, want := range []store.Nanos{1_000_000 - charged, 1_000_000} {
		got, err := db.GetUser(ctx, users[i].ID)
		must(t, err)
		if got.Balance != want {
			t.Fatalf("user %d: balance %d, want %d", i, got.Balance, want)
		}
	}

	// Ask every session of the pool what it planned for the one-user statement.
	var conns []*sql.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	plans := map[int][2]int64{} // rows in the statement → generic, custom plans
	for range db.RawDB().Stats().OpenConnections {
		conn, err := db.RawDB().Conn(ctx)
		must(t, err)
		conns = append(conns, conn)
		rows, err := conn.QueryContext(ctx, `SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
			WHERE statement LIKE 'WITH ins AS (INSERT INTO usage_ledger%debit AS (UPDATE users SET balance = balance -%'`)
		must(t, err)
		for rows.Next() {
			var text string
			var g, c int64
			must(t, rows.Scan(&text, &g, &c))
			n := strings.Count(text, "), (") + 1 // rows in its VALUES
			plans[n] = [2]int64{plans[n][0] + g, plans[n][1] + c}
		}
		must(t, rows.Err())
		rows.Close()
	}
	// Two statements: batches of two rows, and of one (each batch sent again).
	for n, p := range plans {
		if p[0]+p[1] != commits || p[1] > 5 {
			t.Errorf("the one-user statement of %d rows ran %d times with a generic plan and %d with a custom one; "+
				"want %d in all, at most 5 custom", n, p[0], p[1], commits)
		}
	}
	if len(plans) != 2 {
		t.Errorf("one-user statements of %d sizes prepared, want 2: %v", len(plans), plans)
	}
}
