package gateway_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// pgEnv is one node on a real PostgreSQL that the test can stop and start, with a tenant
// (options o) and one account.
func pgEnv(t *testing.T, cfg gateway.Config, o gatewaytest.TenantOptions) (*env, *testenv.Postgres) {
	t.Helper()
	pg := testenv.StartPostgres(t)
	if err := pg.CreateDB("gw"); err != nil {
		t.Fatal(err)
	}
	keys := gatewaytest.NewKeys(t)
	db, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: pg.DSN("gw"), Keys: keys, MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{Store: db, Keys: keys})
	e := &env{Deps: d, tap: gatewaytest.NewTap(t, d.Mock), clock: &gatewaytest.Clock{}}
	e.node = gatewaytest.Start(t, d, cfg, "n1", e.clock.Now)
	e.tenant = gatewaytest.NewTenant(t, d, o)
	e.account(t, "up-db", nil)
	return e, pg
}

// TestDatabaseDownIs503: while PostgreSQL is down a key the node has cached still works,
// and a key it has not seen cannot be checked: that refusal is a retryable 503 marked as the
// gateway's (X-Fluxcode-Reject: database), not a 500 the client would take for an upstream
// failure. Once PostgreSQL is back the new key works without restarting the node.
func TestDatabaseDownIs503(t *testing.T) {
	e, pg := pgEnv(t, testConfig(), gatewaytest.TenantOptions{})
	other := gatewaytest.NewTenant(t, e.Deps, gatewaytest.TenantOptions{Group: e.tenant.Group})

	if resp := e.post(t, "/v1/messages", jsonBody, nil); resp.StatusCode != 200 {
		t.Fatalf("before the outage: status %d: %s", resp.StatusCode, readBody(t, resp))
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	checkRetryable503(t, e.post(t, "/v1/messages", jsonBody, http.Header{"X-Api-Key": {other.Secret}}), gateway.RejectDatabase)

	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		resp := e.post(t, "/v1/messages", uniqueBody("db-back"), http.Header{"X-Api-Key": {other.Secret}})
		readBody(t, resp)
		return resp.StatusCode == 200
	})
}

// TestKnownKeyServedThroughDatabaseOutage: a charge does not make the node forget the key
// (its balance is marked for a fresh read, not dropped), and neither does the end of the
// cache's TTL: while PostgreSQL is down, the key is served on its last known balance and
// the rows queue; once PostgreSQL is back every answer is in the ledger once and the
// balance fell by exactly their charges. With a charge dropping the key, as before, the
// first request of the outage was refused.
func TestKnownKeyServedThroughDatabaseOutage(t *testing.T) {
	e, pg := pgEnv(t, testConfig(), gatewaytest.TenantOptions{})
	start := gatewaytest.Balance(t, e.Store, e.tenant.User.ID)

	ids := map[string]bool{}
	serve := func(what string) {
		t.Helper()
		resp := e.post(t, "/v1/messages", uniqueBody(what), nil)
		if b := readBody(t, resp); resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", what, resp.StatusCode, b)
		}
		ids[resp.Header.Get(gateway.HeaderRequestID)] = true
	}
	serve("before")
	// The charge is committed and announced (invalidate.Balance) within BillNotifyInterval;
	// let the announcement arrive, so the key's entry is marked for a fresh read.
	usageRows(t, e.Store, e.tenant.User.ID, 1)
	time.Sleep(20 * testConfig().BillNotifyInterval)

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	serve("outage after a charge")
	serve("outage, again")
	// Past AuthCacheTTL: the entry is old, and still the last known.
	e.clock.Advance(2 * gateway.Default().AuthCacheTTL)
	serve("outage past the TTL")
	if d := e.node.Metric(t, "fluxcode_gateway_billing_queue_depth", nil); d != 3 {
		t.Errorf("billing queue depth %v during the outage, want 3", d)
	}

	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	rows := usageRows(t, e.Store, e.tenant.User.ID, len(ids))
	var charged store.Nanos
	for _, r := range rows {
		if !ids[r.RequestID] {
			t.Errorf("ledger row %s is no request of the test", r.RequestID)
		}
		charged += r.Charged
	}
	if got := gatewaytest.Balance(t, e.Store, e.tenant.User.ID); start-got != charged || charged <= 0 {
		t.Errorf("balance fell by %d; the ledger charges %d", start-got, charged)
	}
	waitFor(t, func() bool { return e.node.Metric(t, "fluxcode_gateway_billing_queue_depth", nil) == 0 })
}

// TestOutageAdmissionCountsQueuedCharges: while PostgreSQL is down, admission counts the
// node's queued rows against the last known balance. A user whose balance covers one
// request is served once and then refused, where the last known balance alone would admit
// every request of the outage.
func TestOutageAdmissionCountsQueuedCharges(t *testing.T) {
	e, pg := pgEnv(t, testConfig(), gatewaytest.TenantOptions{Balance: 1})
	if resp := e.post(t, "/v1/messages/count_tokens", jsonBody, nil); resp.StatusCode != 200 {
		t.Fatalf("a token count (caches the key): status %d: %s", resp.StatusCode, readBody(t, resp))
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if resp := e.post(t, "/v1/messages", uniqueBody("first"), nil); resp.StatusCode != 200 {
		t.Fatalf("the first request of the outage: status %d: %s", resp.StatusCode, readBody(t, resp))
	}
	resp := e.post(t, "/v1/messages", uniqueBody("second"), nil)
	if b := readBody(t, resp); resp.StatusCode != http.StatusPaymentRequired || resp.Header.Get(gateway.HeaderReject) != gateway.RejectBalance {
		t.Fatalf("the second request of the outage: status %d, %s: %s; want 402 (balance used up by the queued charge)",
			resp.StatusCode, resp.Header.Get(gateway.HeaderReject), b)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	rows := usageRows(t, e.Store, e.tenant.User.ID, 1)
	if got := gatewaytest.Balance(t, e.Store, e.tenant.User.ID); got != 1-rows[0].Charged {
		t.Errorf("balance %d after the outage, want 1 - %d", got, rows[0].Charged)
	}
}

// TestFullLedgerQueueRefuses: a node that holds BillQueueMax unwritten rows refuses billed
// requests with the retryable database 503 rather than serve them without a row it can keep,
// and serves again once PostgreSQL takes the rows.
func TestFullLedgerQueueRefuses(t *testing.T) {
	cfg := testConfig()
	cfg.BillQueueMax = 2
	e, pg := pgEnv(t, cfg, gatewaytest.TenantOptions{})
	if resp := e.post(t, "/v1/messages", uniqueBody("warm"), nil); resp.StatusCode != 200 {
		t.Fatalf("before the outage: status %d: %s", resp.StatusCode, readBody(t, resp))
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	for i, what := range []string{"one", "two"} {
		if resp := e.post(t, "/v1/messages", uniqueBody(what), nil); resp.StatusCode != 200 {
			t.Fatalf("request %d of the outage: status %d: %s", i+1, resp.StatusCode, readBody(t, resp))
		}
	}
	checkRetryable503(t, e.post(t, "/v1/messages", uniqueBody("three"), nil), gateway.RejectDatabase)
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		resp := e.post(t, "/v1/messages", uniqueBody("back"), nil)
		readBody(t, resp)
		return resp.StatusCode == 200
	})
	usageRows(t, e.Store, e.tenant.User.ID, 4)
}

// TestOutageAdmissionCountsQueuedSubscriptionUsage: the same for a subscription window. A
// window with room for one request is filled by the queued row of the first request of the
// outage, and the second is refused (429, subscription) though the last known usage is zero.
func TestOutageAdmissionCountsQueuedSubscriptionUsage(t *testing.T) {
	ctx := context.Background()
	e, pg := pgEnv(t, testConfig(), gatewaytest.TenantOptions{Balance: -1})
	g := &store.Group{Name: "sub-outage", Platform: store.PlatformAnthropic, BillingType: store.BillingSubscription,
		RateMultiplierPPM: 1_000_000, DailyLimit: 1_000_000, Status: store.StatusActive}
	if err := e.Store.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	tn := gatewaytest.NewTenant(t, e.Deps, gatewaytest.TenantOptions{Group: g, Balance: -1})
	start := time.Now().Add(-time.Hour)
	if err := e.Store.CreateSubscription(ctx, &store.Subscription{UserID: tn.User.ID, GroupID: g.ID,
		StartsAt: start, ExpiresAt: start.Add(30 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	gatewaytest.NewAccount(t, e.Deps, "up-sub", []int64{g.ID}, func(a *store.Account) { a.BaseURL = e.tap.URL })
	key := http.Header{"X-Api-Key": {tn.Secret}}
	if resp := e.post(t, "/v1/messages/count_tokens", jsonBody, key); resp.StatusCode != 200 {
		t.Fatalf("a token count (caches the key): status %d: %s", resp.StatusCode, readBody(t, resp))
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if resp := e.post(t, "/v1/messages", uniqueBody("sub first"), key); resp.StatusCode != 200 {
		t.Fatalf("the first request of the outage: status %d: %s", resp.StatusCode, readBody(t, resp))
	}
	resp := e.post(t, "/v1/messages", uniqueBody("sub second"), key)
	if b := readBody(t, resp); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get(gateway.HeaderReject) != gateway.RejectSubscription {
		t.Fatalf("the second request of the outage: status %d, %s: %s; want 429 (window filled by the queued row)",
			resp.StatusCode, resp.Header.Get(gateway.HeaderReject), b)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	rows := usageRows(t, e.Store, tn.User.ID, 1)
	sub, err := e.Store.GetSubscription(ctx, tn.User.ID, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rows[0].Charged < g.DailyLimit || sub.DailyUsed != rows[0].Charged {
		t.Errorf("row charged %d (the window holds %d), daily used %d after the outage", rows[0].Charged, g.DailyLimit, sub.DailyUsed)
	}
}
