package gateway_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/store"
)

// TestIdleStreamTimesOut: an upstream that goes silent mid-stream is cut after the idle
// timeout; the client gets one error event and the row is partial.
func TestIdleStreamTimesOut(t *testing.T) {
	cfg := testConfig()
	cfg.IdleTimeout = 200 * time.Millisecond
	e := newEnv(t, cfg, gatewaytest.TenantOptions{})
	e.account(t, "up-idle", nil)
	if err := e.Mock.SetScript("up-idle", mockupstream.Script{Events: 10, Fail: &mockupstream.Failure{Kind: mockupstream.FailStall, After: 4}}); err != nil {
		t.Fatal(err)
	}
	resp := e.post(t, "/v1/messages", streamBody, nil)
	got := readBody(t, resp)
	if resp.StatusCode != 200 || bytes.Count(got, []byte("event: error")) != 1 || !bytes.Contains(got, []byte("went silent")) {
		t.Fatalf("status %d:\n%s", resp.StatusCode, got)
	}
	if row := usageRows(t, e.Store, e.tenant.User.ID, 1)[0]; !row.Partial || row.InputTokens == 0 {
		t.Fatalf("row %+v", row)
	}
}

// TestHeaderTimeoutFailsOver: an upstream that sends no headers in time counts as a network
// failure: the next account serves.
func TestHeaderTimeoutFailsOver(t *testing.T) {
	cfg := testConfig()
	cfg.HeaderTimeout = 200 * time.Millisecond
	e := newEnv(t, cfg, gatewaytest.TenantOptions{})
	e.account(t, "up-slow", func(a *store.Account) { a.Priority = 10 })
	e.account(t, "up-fast", func(a *store.Account) { a.Priority = 20 })
	if err := e.Mock.SetScript("up-slow", mockupstream.Script{Latency: time.Minute}); err != nil {
		t.Fatal(err)
	}
	resp := e.post(t, "/v1/messages", jsonBody, nil)
	got := readBody(t, resp)
	ex := e.tap.Exchanges()
	if resp.StatusCode != 200 || len(ex) != 2 || ex[1].UpstreamK != "up-fast" || !bytes.Equal(got, ex[1].Body()) {
		t.Fatalf("status %d after %d attempts", resp.StatusCode, len(ex))
	}
}

// TestClientGoneBeforeAnswerIsNotFailedOver: a client that leaves while the upstream is
// still thinking is not served by another account when that upstream then fails, and the
// failure that followed is not blamed on the client.
func TestClientGoneBeforeAnswerIsNotFailedOver(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-first", func(a *store.Account) { a.Priority = 10 })
	e.account(t, "up-second", func(a *store.Account) { a.Priority = 20 })
	if err := e.Mock.SetScript("up-first", mockupstream.Script{Latency: 300 * time.Millisecond, Fail: &mockupstream.Failure{Status: 500}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.node.URL+"/v1/messages", strings.NewReader(jsonBody))
	req.Header.Set("X-Api-Key", e.tenant.Secret)
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the request was not cancelled")
	}
	// The first upstream's answer arrives after the client left; the handler then ends
	// (counted in requests_total) without trying another account.
	waitFor(t, func() bool {
		return e.node.Metric(t, "fluxcode_gateway_requests_total", map[string]string{"outcome": "client_gone"}) == 1
	})
	if n := e.Mock.Stats("up-second").Requests; n != 0 {
		t.Fatalf("failed over for a client that had left (%d requests)", n)
	}
	if n := e.node.Metric(t, "fluxcode_gateway_failovers_total", nil); n != 1 {
		t.Fatalf("failovers_total %v, want the one failed attempt counted", n)
	}
}
