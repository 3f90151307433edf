package sqlstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
)

// BenchmarkKeyAuthByHash measures the lookup every gateway request starts with: one
// prepared query for key, user, group and subscription, from parallel goroutines.
func BenchmarkKeyAuthByHash(b *testing.B) {
	for _, d := range dialects {
		b.Run(d.name, func(b *testing.B) {
			db := MustOpen(b, d.dsn(b))
			const keys = 1000
			hashes := make([][]byte, keys)
			g := mustGroupB(b, db, store.BillingSubscription)
			for i := range keys {
				u := &store.User{Email: fmt.Sprintf("bench%d@example.test", i)}
				mustB(b, db.CreateUser(b.Context(), u))
				k := &store.APIKey{UserID: u.ID, GroupID: g.ID, Hash: []byte(fmt.Sprintf("hash-%08d", i))}
				mustB(b, db.CreateAPIKey(b.Context(), k))
				if i%2 == 0 {
					mustB(b, db.CreateSubscription(b.Context(), &store.Subscription{UserID: u.ID, GroupID: g.ID,
						ExpiresAt: time.Now().Add(time.Hour)}))
				}
				hashes[i] = k.Hash
			}
			var n atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					h := hashes[n.Add(1)%keys]
					if _, err := db.KeyAuthByHash(b.Context(), h); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRecordUsageBatch measures billing: batches of 50 ledger rows spread over 10 users
// (balance) and 5 subscriptions, one transaction each. ns/op is per batch; ns/row is reported.
func BenchmarkRecordUsageBatch(b *testing.B) { benchRecordUsage(b, 50) }

// BenchmarkRecordUsageSmallBatch is BenchmarkRecordUsageBatch with batches of 4 rows, the
// size the gateway's ledger writer sees at a few dozen concurrent requests.
func BenchmarkRecordUsageSmallBatch(b *testing.B) { benchRecordUsage(b, 4) }

func benchRecordUsage(b *testing.B, batch int) {
	for _, d := range dialects {
		b.Run(d.name, func(b *testing.B) {
			db := MustOpen(b, d.dsn(b))
			balance, subs := mustGroupB(b, db, store.BillingBalance), mustGroupB(b, db, store.BillingSubscription)
			var users []*store.User
			for i := range 10 {
				u := &store.User{Email: fmt.Sprintf("bench%d@example.test", i), Balance: 1 << 60}
				mustB(b, db.CreateUser(b.Context(), u))
				if i < 5 {
					mustB(b, db.CreateSubscription(b.Context(), &store.Subscription{UserID: u.ID, GroupID: subs.ID,
						ExpiresAt: time.Now().Add(time.Hour)}))
				}
				users = append(users, u)
			}
			seq := 0
			statements := db.Statements()
			b.ResetTimer()
			for b.Loop() {
				rows := make([]store.Usage, batch)
				for i := range rows {
					seq++
					u := users[seq%len(users)]
					rows[i] = store.Usage{RequestID: fmt.Sprintf("req-%d", seq), UserID: u.ID, GroupID: balance.ID,
						Model: "claude-sonnet-4-5", InputTokens: 100, OutputTokens: 200, Cost: 1234, Charged: 1234,
						BillingType: store.BillingBalance}
					if seq%len(users) < 5 && seq%2 == 0 {
						rows[i].GroupID, rows[i].BillingType = subs.ID, store.BillingSubscription
					}
				}
				if _, err := db.RecordUsage(b.Context(), rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/row")
			if d.name == "Postgres" {
				b.ReportMetric(float64(db.Statements()-statements)/float64(b.N*batch), "stmts/row")
			}
		})
	}
}

func mustGroupB(b *testing.B, db *sqlstore.DB, billing string) *store.Group {
	g := &store.Group{Name: "bench-" + billing, Platform: store.PlatformAnthropic, BillingType: billing, RateMultiplierPPM: 1_000_000}
	mustB(b, db.CreateGroup(b.Context(), g))
	return g
}

func mustB(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
