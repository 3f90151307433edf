package gateway_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/login"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/store"
)

// loginEnv is one node whose logins are renewed against the mock's login server.
func loginEnv(t *testing.T, cfg gateway.Config) *env {
	t.Helper()
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{})
	lc := login.Claude()
	lc.TokenURL, lc.ProfileURL = d.Mock.URL()+"/v1/oauth/token", d.Mock.URL()+"/api/oauth/profile"
	reg, err := login.NewRegistry([]login.Config{lc}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Logins = login.NewRefresher(d.Store, d.Coord, reg, nil, "n1", 0)
	e := &env{Deps: d, tap: gatewaytest.NewTap(t, d.Mock), clock: &gatewaytest.Clock{}}
	e.node = gatewaytest.Start(t, d, cfg, "n1", e.clock.Now)
	e.tenant = gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{})
	return e
}

func (e *env) loginAccount(t *testing.T, mutate func(*store.Account)) (*store.Account, mockupstream.Login) {
	t.Helper()
	l := e.Mock.NewLogin("max@example.com")
	a := e.account(t, l.AccessToken, func(a *store.Account) {
		a.Type = store.AccountTypeOAuth
		a.Credentials = store.Credentials{AccessToken: l.AccessToken, RefreshToken: l.RefreshToken, ExpiresAt: l.ExpiresAt}
		if mutate != nil {
			mutate(a)
		}
	})
	return a, l
}

// An access token that expires mid-traffic: the requests that meet the 401 renew the login
// (one refresh call between them) and are retried on the same account; none fails, and the
// account is not marked.
func TestExpiredLoginIsRenewedOnceAndRetried(t *testing.T) {
	e := loginEnv(t, testConfig())
	a, l := e.loginAccount(t, nil)
	if resp := e.post(t, "/v1/messages", jsonBody, nil); resp.StatusCode != 200 {
		t.Fatalf("before expiry: %d %s", resp.StatusCode, readBody(t, resp))
	} else {
		readBody(t, resp)
	}
	e.Mock.ExpireAccess(l.AccessToken)
	allServed(t, 12, func() int {
		resp := e.post(t, "/v1/messages", jsonBody, nil)
		readBody(t, resp)
		return resp.StatusCode
	})
	if st := e.Mock.OAuthStats(); st.RefreshCalls != 1 || st.Rotations != 1 {
		t.Fatalf("token endpoint saw %+v, want one refresh", st)
	}
	got := gatewaytest.Account(t, e.Store, a.ID)
	if !got.Available(time.Now()) || got.Status != store.StatusActive || got.CredentialsVersion != 1 {
		t.Fatalf("account after renewal: status %q (%q), paused until %v, version %d", got.Status, got.ErrorMessage, got.TempUnschedUntil, got.CredentialsVersion)
	}
	if n := e.Mock.Stats(got.Credentials.AccessToken).Completed; n == 0 {
		t.Fatal("no answer was served with the renewed token")
	}
}

// The admin's account test meets an expired access token as a client request does: the
// login is renewed once and the test goes through with the new token.
func TestAccountTestRenewsAnExpiredLogin(t *testing.T) {
	e := loginEnv(t, testConfig())
	a, l := e.loginAccount(t, nil)
	e.Mock.ExpireAccess(l.AccessToken)
	res := e.node.Gateway.TestAccount(t.Context(), gatewaytest.Account(t, e.Store, a.ID), "")
	if !res.OK || res.Status != 200 {
		t.Fatalf("test of an expired login: %+v", res)
	}
	if st := e.Mock.OAuthStats(); st.RefreshCalls != 1 {
		t.Fatalf("token endpoint saw %+v, want one refresh", st)
	}
	got := gatewaytest.Account(t, e.Store, a.ID)
	if got.CredentialsVersion != 1 || got.Credentials.AccessToken == l.AccessToken || got.Status != store.StatusActive {
		t.Fatalf("account after the test: version %d, status %q, token renewed %v", got.CredentialsVersion, got.Status,
			got.Credentials.AccessToken != l.AccessToken)
	}
	if n := e.Mock.Stats(got.Credentials.AccessToken).Completed; n != 1 {
		t.Fatalf("%d answers with the renewed token, want the test's one", n)
	}

	// A login whose renewal is refused: the test says so, and the refused refresh token puts
	// the account in error, as it would for a client's request.
	b, lb := e.loginAccount(t, nil)
	e.Mock.ExpireAccess(lb.AccessToken)
	e.Mock.RevokeLogin(lb.RefreshToken)
	res = e.node.Gateway.TestAccount(t.Context(), gatewaytest.Account(t, e.Store, b.ID), "")
	if res.OK || res.Status != 401 || !strings.Contains(res.Error, "renewing the login failed") {
		t.Fatalf("test of a login whose renewal is refused: %+v", res)
	}
	if got := gatewaytest.Account(t, e.Store, b.ID); got.Status != store.StatusError || !strings.Contains(got.ErrorMessage, "invalid_grant") {
		t.Fatalf("revoked login after the test: status %q, message %q", got.Status, got.ErrorMessage)
	}
}

// A login whose refresh token is dead: the 401 leads to one refused refresh, the account is
// in error with the reason, and the request fails over to another account.
func TestRevokedLoginIsMarkedWithTheReason(t *testing.T) {
	e := loginEnv(t, testConfig())
	a, l := e.loginAccount(t, func(a *store.Account) { a.Priority = 1 })
	e.account(t, "up-spare", func(a *store.Account) { a.Priority = 2 })
	e.Mock.ExpireAccess(l.AccessToken)
	e.Mock.RevokeLogin(l.RefreshToken)
	resp := e.post(t, "/v1/messages", jsonBody, nil)
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	got := gatewaytest.Account(t, e.Store, a.ID)
	if got.Status != store.StatusError || !strings.Contains(got.ErrorMessage, "invalid_grant") {
		t.Fatalf("revoked login: status %q, message %q", got.Status, got.ErrorMessage)
	}
}

// Usage windows: a 5h window reported at 96% pauses the account (pause at 95%) until the
// window resets, and the windows are recorded; a 429 with unified status rejected marks the
// account rate-limited until the reset it names.
func TestSubscriptionWindowsPauseAndRejectedMarksUntilReset(t *testing.T) {
	cfg := testConfig()
	cfg.SubscriptionPausePercent = 95
	e := loginEnv(t, cfg)
	a, l := e.loginAccount(t, nil)
	if err := e.Mock.SetScript(l.AccessToken, mockupstream.Script{Unified: &mockupstream.Unified{FiveHour: 0.96, SevenDay: 0.3}}); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	resp := e.post(t, "/v1/messages", jsonBody, nil)
	if b := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	got := waitAccount(t, e, a.ID, func(a *store.Account) bool { return a.TempUnschedUntil != nil && a.Windows != nil })
	if !gatewaytest.Near(got.TempUnschedUntil, sent.Add(5*time.Hour), 5*time.Second) || !strings.Contains(got.TempUnschedReason, "5h") {
		t.Fatalf("paused until %v (%q), want the 5h reset", got.TempUnschedUntil, got.TempUnschedReason)
	}
	if w := got.Windows; w.Status != "allowed_warning" || len(w.Windows) != 2 || w.Windows[0].Name != "5h" || w.Windows[0].Utilization != 0.96 {
		t.Fatalf("windows %+v", w)
	}
	if resp := e.post(t, "/v1/messages", jsonBody, nil); resp.StatusCode == 200 {
		t.Fatal("a paused account still served")
	} else {
		readBody(t, resp)
	}

	b, lb := e.loginAccount(t, nil)
	if err := e.Mock.SetScript(lb.AccessToken, mockupstream.Script{Fail: &mockupstream.Failure{Status: 429,
		RateLimit: mockupstream.RateLimitUnified, NoRetryAfter: true, RetryAfter: 2 * time.Hour}}); err != nil {
		t.Fatal(err)
	}
	sent = time.Now()
	resp = e.post(t, "/v1/messages", jsonBody, nil)
	readBody(t, resp)
	got = gatewaytest.Account(t, e.Store, b.ID)
	if !gatewaytest.Near(got.RateLimitedUntil, sent.Add(2*time.Hour), 5*time.Second) {
		t.Fatalf("rate limited until %v, want the unified reset in 2h", got.RateLimitedUntil)
	}
}

func waitAccount(t *testing.T, e *env, id int64, ok func(*store.Account) bool) *store.Account {
	t.Helper()
	for range 400 {
		if a := gatewaytest.Account(t, e.Store, id); ok(a) {
			return a
		}
		time.Sleep(10 * time.Millisecond)
	}
	a := gatewaytest.Account(t, e.Store, id)
	t.Fatalf("account %d never reached the expected state: %+v", id, a)
	return nil
}

// allServed sends n requests at once (send returns a status) and fails t unless every one
// answered 200.
func allServed(t *testing.T, n int, send func() int) {
	t.Helper()
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = send()
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != 200 {
			t.Fatalf("request %d answered %d", i, s)
		}
	}
}
