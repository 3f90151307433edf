package gateway

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/fluxcode/fluxcode/internal/billing"
	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/coord/memory"
	"github.com/fluxcode/fluxcode/internal/coord/redis"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// benchGateway is a gateway on a SQLite store in a temporary directory and co, with one user
// and key (limits 100) in a balance group.
func benchGateway(b *testing.B, co coord.Coordinator) (*Gateway, string, *store.KeyAuth) {
	b.Helper()
	master, _ := secret.ParseMasterKey(secret.NewMasterKey())
	keys, err := secret.NewKeys(master)
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: filepath.Join(b.TempDir(), "db"), Keys: keys, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	ctx := context.Background()
	g := &store.Group{Name: "g", Platform: store.PlatformAnthropic, BillingType: store.BillingBalance, RateMultiplierPPM: 1e6, Status: store.StatusActive}
	if err := st.CreateGroup(ctx, g); err != nil {
		b.Fatal(err)
	}
	u := &store.User{Email: "u@example.test", PasswordHash: "x", Role: store.RoleUser, Status: store.StatusActive, Concurrency: 100}
	if err := st.CreateUser(ctx, u); err != nil {
		b.Fatal(err)
	}
	sec := secret.NewAPIKey()
	if err := st.CreateAPIKey(ctx, &store.APIKey{UserID: u.ID, GroupID: g.ID, Name: "k", Hash: keys.HashAPIKey(sec), Prefix: sec[:7], Status: store.StatusActive, Concurrency: 100}); err != nil {
		b.Fatal(err)
	}
	gw, err := New(Options{Providers: []provider.Provider{anthropic.New()}, Store: st, Coord: co, Keys: keys, Prices: billing.Default()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { gw.Close(context.Background()) })
	a, err := gw.lookupKey(ctx, sec)
	if err != nil {
		b.Fatal(err)
	}
	return gw, sec, a
}

func BenchmarkKeyLookupCached(b *testing.B) {
	gw, sec, _ := benchGateway(b, memory.New())
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := gw.lookupKey(ctx, sec); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSlotAcquireRelease takes and gives back a user's, a key's and an account's slot,
// as one delivered request does: one atomic acquire and one release.
func BenchmarkSlotAcquireRelease(b *testing.B) {
	b.Run("Memory", func(b *testing.B) { benchSlots(b, memory.New()) })
	b.Run("Redis", func(b *testing.B) {
		r := testenv.StartRedis(b)
		co, err := redis.New(context.Background(), redis.Options{URL: r.URL()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { co.Close() })
		benchSlots(b, co)
	})
}

func benchSlots(b *testing.B, co coord.Coordinator) {
	gw, _, auth := benchGateway(b, co)
	acct := &store.Account{ID: 1, Platform: store.PlatformAnthropic, Concurrency: 1 << 20}
	cands := []Candidate{{Account: acct}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest("POST", "/v1/messages", nil)
			c := gw.newCall(httptest.NewRecorder(), r, &gw.routes[0])
			c.auth = auth
			l, _, err := c.tryAcquire(cands, nil)
			if err != nil || l == nil {
				b.Fatalf("acquire: %v", err)
			}
			c.release(l, false)
			gw.releaseSlots(c.id, c.held)
		}
	})
}
