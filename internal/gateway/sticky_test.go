package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/store"
)

// servedBy sends one message of session and returns the upstream key that answered.
func (e *env) servedBy(t *testing.T, session, text string) string {
	t.Helper()
	resp := e.post(t, "/v1/messages", uniqueBody(text), http.Header{"X-Claude-Code-Session-Id": {session}})
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	ex := e.tap.Exchanges()
	return ex[len(ex)-1].UpstreamK
}

func (e *env) setPriority(t *testing.T, a *store.Account, prio int) {
	t.Helper()
	a.Priority = prio
	if err := e.Store.UpdateAccount(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if err := invalidate.Publish(context.Background(), e.Coord, invalidate.Account, a.ID); err != nil {
		t.Fatal(err)
	}
}

// TestStickyBusyIsBypassedWithoutRebinding: while the bound account is full the session is
// served elsewhere, but it comes back to its account afterwards, even though the ranking
// alone would keep it away.
func TestStickyBusyIsBypassedWithoutRebinding(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	p := e.account(t, "up-p", func(a *store.Account) { a.Priority = 10; a.Concurrency = 1 })
	q := e.account(t, "up-q", func(a *store.Account) { a.Priority = 20 })
	const s = "session-busy"
	if got := e.servedBy(t, s, "turn 1"); got != "up-p" {
		t.Fatalf("turn 1 on %s", got)
	}
	e.setPriority(t, p, 90)
	e.setPriority(t, q, 10)
	waitFor(t, func() bool { return e.servedBy(t, "", "fresh "+time.Now().String()) == "up-q" })

	release := e.tap.Hold(t, "hold the slot")
	held := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, e.node.URL+"/v1/messages", strings.NewReader(uniqueBody("hold the slot")))
		req.Header.Set("X-Api-Key", e.tenant.Secret)
		req.Header.Set("X-Claude-Code-Session-Id", s)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			held <- 0
			return
		}
		readBody(t, resp)
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	// The probes above ended on up-q: the held turn is the next exchange, on up-p.
	waitFor(t, func() bool { ex := e.tap.Exchanges(); return ex[len(ex)-1].UpstreamK == "up-p" })

	if got := e.servedBy(t, s, "turn 3"); got != "up-q" {
		t.Fatalf("with its account full, turn 3 went to %s, want up-q", got)
	}
	release()
	if code := <-held; code != 200 {
		t.Fatalf("the held turn ended with %d", code)
	}
	if got := e.servedBy(t, s, "turn 4"); got != "up-p" {
		t.Fatalf("turn 4 went to %s: a busy account must not lose its session", got)
	}
}

// TestStickyUnavailableIsRebound: when the bound account fails and is marked, the session
// moves to the account that served it and stays there after the mark ends.
func TestStickyUnavailableIsRebound(t *testing.T) {
	cfg := testConfig()
	cfg.OverloadCooldown = time.Minute
	e := newEnv(t, cfg, gatewaytest.TenantOptions{})
	e.account(t, "up-p", func(a *store.Account) { a.Priority = 10 })
	e.account(t, "up-q", func(a *store.Account) { a.Priority = 20 })
	const s = "session-rebind"
	if got := e.servedBy(t, s, "turn 1"); got != "up-p" {
		t.Fatalf("turn 1 on %s", got)
	}
	if err := e.Mock.SetScript("up-p", mockupstream.Script{Fail: &mockupstream.Failure{Status: 529}, FailTimes: 1}); err != nil {
		t.Fatal(err)
	}
	if got := e.servedBy(t, s, "turn 2"); got != "up-q" {
		t.Fatalf("turn 2 on %s, want the failover to up-q", got)
	}
	e.clock.Advance(2 * time.Minute) // the overload mark has ended: ranking prefers up-p again
	if got := e.servedBy(t, "", "fresh"); got != "up-p" {
		t.Fatalf("a fresh session went to %s, want up-p", got)
	}
	if got := e.servedBy(t, s, "turn 3"); got != "up-q" {
		t.Fatalf("turn 3 on %s: the session should have been rebound to up-q", got)
	}
}

// TestStickyKeptAfterUnmarkedFailover: a failover away from the bound account for a reason
// that leaves no mark (a 5xx) serves the turn elsewhere but keeps the session where it was.
func TestStickyKeptAfterUnmarkedFailover(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-p", func(a *store.Account) { a.Priority = 10 })
	e.account(t, "up-q", func(a *store.Account) { a.Priority = 20 })
	const s = "session-keep"
	if got := e.servedBy(t, s, "turn 1"); got != "up-p" {
		t.Fatalf("turn 1 on %s", got)
	}
	if err := e.Mock.SetScript("up-p", mockupstream.Script{Fail: &mockupstream.Failure{Status: 500}, FailTimes: 1}); err != nil {
		t.Fatal(err)
	}
	if got := e.servedBy(t, s, "turn 2"); got != "up-q" {
		t.Fatalf("turn 2 on %s, want the failover to up-q", got)
	}
	if got := e.servedBy(t, s, "turn 3"); got != "up-p" {
		t.Fatalf("turn 3 on %s: an unmarked failure must not move the session", got)
	}
}
