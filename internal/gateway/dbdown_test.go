package gateway_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// TestDatabaseDownIs503: while PostgreSQL is down a key the node has cached still works,
// and a key it has not seen cannot be checked: that refusal is a retryable 503 marked as the
// gateway's (X-Fluxcode-Reject: database), not a 500 the client would take for an upstream
// failure. Once PostgreSQL is back the new key works without restarting the node.
func TestDatabaseDownIs503(t *testing.T) {
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
	e.node = gatewaytest.Start(t, d, testConfig(), "n1", e.clock.Now)
	e.tenant = gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{})
	other := gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{Group: e.tenant.Group})
	e.account(t, "up-db", nil)

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
