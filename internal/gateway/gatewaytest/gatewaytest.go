// Package gatewaytest starts a gateway node with real dependencies for tests: a SQL store
// (SQLite by default, or any store.Store such as PostgreSQL from testenv), a coordinator
// (in-process by default, or Redis), the built-in price table and the in-process Anthropic
// mock upstream; plus helpers that seed users, groups, keys and accounts through the store.
// Several nodes share one store, coordinator and mock by passing them in.
package gatewaytest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxcode/fluxcode/internal/billing"
	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/coord/memory"
	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
)

// Deps are what nodes of one test share. Zero fields are created by NewDeps.
type Deps struct {
	Store  store.Store
	Coord  coord.Coordinator
	Keys   *secret.Keys
	Prices *billing.Table
	Mock   *mockupstream.Server
	// Providers are the gateway's protocols; nil means Anthropic alone.
	Providers []provider.Provider
	// Logins renews subscription logins (a login.Refresher); nil: none.
	Logins gateway.Logins
}

// NewDeps fills the missing parts of d: a SQLite store in a temporary directory, an
// in-process coordinator, fresh keys, the default prices and a started mock upstream, all
// closed at the end of the test.
func NewDeps(t testing.TB, d Deps) *Deps {
	t.Helper()
	if d.Keys == nil {
		d.Keys = NewKeys(t)
	}
	if d.Store == nil {
		d.Store = OpenSQLite(t, d.Keys)
	}
	if d.Coord == nil {
		c := memory.New()
		t.Cleanup(func() { c.Close() })
		d.Coord = c
	}
	if d.Prices == nil {
		d.Prices = billing.Default()
	}
	if d.Mock == nil {
		d.Mock = StartMock(t)
	}
	return &d
}

// NewKeys returns keys from a fresh master key.
func NewKeys(t testing.TB) *secret.Keys {
	t.Helper()
	k, err := secret.NewKeys(mustMaster(t))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustMaster(t testing.TB) []byte {
	m, err := secret.ParseMasterKey(secret.NewMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// OpenSQLite opens a migrated SQLite store in a temporary directory.
func OpenSQLite(t testing.TB, keys *secret.Keys) *sqlstore.DB {
	t.Helper()
	return OpenSQLiteFile(t, keys, filepath.Join(t.TempDir(), "fluxcode.db"))
}

// OpenSQLiteFile opens a migrated SQLite store in the file at path.
func OpenSQLiteFile(t testing.TB, keys *secret.Keys, path string) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: path, Keys: keys, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// StartMock starts an in-process mock upstream on loopback.
func StartMock(t testing.TB) *mockupstream.Server {
	t.Helper()
	m := mockupstream.New(mockupstream.Options{})
	if err := m.Start(); err != nil {
		t.Fatalf("start mock upstream: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// Logger is the logger of test nodes: silent unless FLUXCODE_TEST_LOG is set.
func Logger() *slog.Logger { return quietLogger() }

func quietLogger() *slog.Logger {
	if os.Getenv("FLUXCODE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// Node is one gateway serving on an httptest server.
type Node struct {
	*Deps
	Gateway *gateway.Gateway
	Server  *httptest.Server
	URL     string
	Metrics *prometheus.Registry // the node's collectors
	closed  atomic.Bool
}

// Metric returns the value of the counter or gauge name whose labels include labels (0 when
// there is none).
func (n *Node) Metric(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := n.Metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// Loopback is the allowlist the harness gives nodes so that they may dial the mock upstream
// (on 127.0.0.1): the gateway's default refuses loopback upstreams.
var Loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Start starts a gateway node on d with cfg (zero fields take the defaults). A nil
// cfg.AllowedNetworks becomes Loopback, explicitly; pass an empty, non-nil slice to keep the
// default refusal of loopback upstreams. now, when not nil, is the node's clock. Set
// FLUXCODE_TEST_LOG=1 to see its logs.
func Start(t testing.TB, d *Deps, cfg gateway.Config, name string, now func() time.Time) *Node {
	t.Helper()
	if cfg.AllowedNetworks == nil {
		cfg.AllowedNetworks = Loopback
	}
	reg := prometheus.NewRegistry()
	provs := d.Providers
	if provs == nil {
		provs = []provider.Provider{anthropic.New()}
	}
	gw, err := gateway.New(gateway.Options{
		Providers: provs,
		Store:     d.Store, Coord: d.Coord, Keys: d.Keys, Prices: d.Prices, Metrics: reg,
		Logger: quietLogger().With("node", name), Config: cfg, NodeName: name, Now: now, Logins: d.Logins,
	})
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	mux := http.NewServeMux()
	gw.Routes(mux)
	srv := httptest.NewServer(mux)
	n := &Node{Deps: d, Gateway: gw, Server: srv, URL: srv.URL, Metrics: reg}
	t.Cleanup(func() { n.Close(t) })
	return n
}

// Close stops the node the graceful way: the server drains, then the gateway flushes billing.
func (n *Node) Close(t testing.TB) {
	if !n.closed.CompareAndSwap(false, true) {
		return
	}
	n.Server.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Gateway.Close(ctx); err != nil {
		t.Errorf("gateway close: %v", err)
	}
}

// Tenant is a user with one API key in one group.
type Tenant struct {
	User  *store.User
	Group *store.Group
	Key   *store.APIKey
	// Secret is the API key to send.
	Secret string
}

// TenantOptions shape a tenant. Zero values: balance $100, no concurrency limits, a balance
// group at 1.0×.
type TenantOptions struct {
	Balance         store.Nanos // negative: leave the balance at zero
	UserConcurrency int
	KeyConcurrency  int
	Group           *store.Group // an existing group to join; nil creates one
	MultiplierPPM   int64
}

var seq atomic.Int64

// NewGroup creates an Anthropic balance group.
func NewGroup(t testing.TB, st store.Store, ppm int64) *store.Group {
	t.Helper()
	if ppm == 0 {
		ppm = 1_000_000
	}
	g := &store.Group{Name: fmt.Sprintf("group-%d", seq.Add(1)), Platform: store.PlatformAnthropic,
		BillingType: store.BillingBalance, RateMultiplierPPM: ppm, Status: store.StatusActive}
	if err := st.CreateGroup(context.Background(), g); err != nil {
		t.Fatalf("create group: %v", err)
	}
	return g
}

// NewTenant creates a user (with balance), a group (unless given) and an API key.
func NewTenant(t testing.TB, d *Deps, o TenantOptions) *Tenant {
	t.Helper()
	ctx := context.Background()
	n := seq.Add(1)
	g := o.Group
	if g == nil {
		g = NewGroup(t, d.Store, o.MultiplierPPM)
	}
	u := &store.User{Email: fmt.Sprintf("user%d@example.test", n), PasswordHash: "x", Role: store.RoleUser,
		Status: store.StatusActive, Concurrency: o.UserConcurrency}
	if err := d.Store.CreateUser(ctx, u); err != nil {
		t.Fatalf("create user: %v", err)
	}
	balance := o.Balance
	if balance == 0 {
		balance = 100_000_000_000 // $100
	}
	if balance > 0 {
		nb, err := d.Store.AdjustBalance(ctx, &store.BalanceTransaction{UserID: u.ID, Amount: balance, Note: "test", CreatedBy: u.ID})
		if err != nil {
			t.Fatalf("adjust balance: %v", err)
		}
		u.Balance = nb
	}
	sec := secret.NewAPIKey()
	k := &store.APIKey{UserID: u.ID, GroupID: g.ID, Name: "test", Hash: d.Keys.HashAPIKey(sec), Prefix: sec[:7],
		Status: store.StatusActive, Concurrency: o.KeyConcurrency}
	if err := d.Store.CreateAPIKey(ctx, k); err != nil {
		t.Fatalf("create key: %v", err)
	}
	return &Tenant{User: u, Group: g, Key: k, Secret: sec}
}

// NewAccount creates an active, schedulable Anthropic API-key account in the groups, whose
// upstream key (what the mock counts by) is upstreamKey and whose base URL is the mock's.
// mutate may change anything before it is stored.
func NewAccount(t testing.TB, d *Deps, upstreamKey string, groups []int64, mutate func(*store.Account)) *store.Account {
	t.Helper()
	a := &store.Account{Name: upstreamKey, Platform: store.PlatformAnthropic, Type: store.AccountTypeAPIKey,
		Credentials: store.Credentials{APIKey: upstreamKey}, BaseURL: d.Mock.URL(), Priority: 50,
		Status: store.StatusActive, Schedulable: true, GroupIDs: groups}
	if mutate != nil {
		mutate(a)
	}
	if err := d.Store.CreateAccount(context.Background(), a); err != nil {
		t.Fatalf("create account: %v", err)
	}
	// As the admin API does: every node drops its copy of the groups' accounts.
	if err := invalidate.Publish(context.Background(), d.Coord, invalidate.Account, a.ID); err != nil {
		t.Fatalf("publish invalidation: %v", err)
	}
	return a
}

// Balance reads a user's balance from the store.
func Balance(t testing.TB, st store.Store, userID int64) store.Nanos {
	t.Helper()
	u, err := st.GetUser(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	return u.Balance
}

// Clock is a settable clock for nodes: it runs with real time, shifted by Advance.
type Clock struct{ offset atomic.Int64 }

// Now is the shifted time.
func (c *Clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// Account reads an account from the store.
func Account(t testing.TB, st store.Store, id int64) *store.Account {
	t.Helper()
	a, err := st.GetAccount(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Near reports whether a recorded time is within slack of want: the clocks of the mock, the
// gateway and the test differ by the time a request takes.
func Near(got *time.Time, want time.Time, slack time.Duration) bool {
	return got != nil && got.Sub(want) <= slack && want.Sub(*got) <= slack
}

// MockLog returns the latest n log entries of the mock's key once the mock has nothing in
// flight (an answer is logged a moment after the client has read it), failing t when fewer
// than n are there.
func MockLog(t testing.TB, m *mockupstream.Server, key string, n int) []mockupstream.LogEntry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	log := m.Log(key, n)
	if len(log) < n {
		t.Fatalf("the mock logged %d answers for %s, want %d", len(log), key, n)
	}
	return log
}
