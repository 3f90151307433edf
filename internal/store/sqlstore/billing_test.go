package sqlstore_test

import (
	"fmt"
	"math/rand/v2"
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
