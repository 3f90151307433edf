package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/store"
)

// TestErrorRuleMakesAccountTemporarilyUnschedulable: an admin rule turns a 403 that names
// a keyword into a pause instead of the error state.
func TestErrorRuleMakesAccountTemporarilyUnschedulable(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	if err := e.Store.CreateErrorRule(context.Background(), &store.ErrorRule{StatusCode: 403, Keyword: "Cloudflare", Minutes: 15, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	first := e.account(t, "up-first", func(a *store.Account) { a.Priority = 10 })
	e.account(t, "up-second", func(a *store.Account) { a.Priority = 20 })
	if err := e.Mock.SetScript("up-first", mockupstream.Script{Fail: &mockupstream.Failure{Status: 403, Message: "blocked by cloudflare edge"}, FailTimes: 1}); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	resp := e.post(t, "/v1/messages", jsonBody, nil)
	readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	a := gatewaytest.Account(t, e.Store, first.ID)
	if a.Status != store.StatusActive || !gatewaytest.Near(a.TempUnschedUntil, sent.Add(15*time.Minute), 3*time.Second) || !strings.Contains(a.TempUnschedReason, "403") {
		t.Fatalf("status %q, temp-unschedulable until %v (%q)", a.Status, a.TempUnschedUntil, a.TempUnschedReason)
	}
}

// TestFailoverBounded: every account fails; at most MaxAccountSwitches+1 accounts are tried,
// none twice, and the client gets the last upstream error in Anthropic's format (its status,
// not the account's own words).
func TestFailoverBounded(t *testing.T) {
	cfg := testConfig()
	cfg.MaxAccountSwitches = 2
	e := newEnv(t, cfg, gatewaytest.TenantOptions{})
	keys := []string{"up-a", "up-b", "up-c", "up-d"}
	for _, k := range keys {
		e.account(t, k, nil)
		if err := e.Mock.SetScript(k, mockupstream.Script{Fail: &mockupstream.Failure{Status: 500, Message: "boom " + k}}); err != nil {
			t.Fatal(err)
		}
	}
	resp := e.post(t, "/v1/messages", jsonBody, nil)
	var body struct {
		Error struct{ Type, Message string } `json:"error"`
	}
	if err := json.Unmarshal(readBody(t, resp), &body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 500 || body.Error.Type != "api_error" || !strings.Contains(body.Error.Message, "500") || strings.Contains(body.Error.Message, "boom") || resp.Header.Get(gateway.HeaderReject) != "" {
		t.Fatalf("got %d %+v (reject %q)", resp.StatusCode, body, resp.Header.Get(gateway.HeaderReject))
	}
	tried := 0
	for _, k := range keys {
		switch n := e.Mock.Stats(k).Requests; n {
		case 0:
		case 1:
			tried++
		default:
			t.Errorf("account %s tried %d times", k, n)
		}
	}
	if tried != 3 {
		t.Errorf("%d accounts tried, want MaxAccountSwitches+1 = 3", tried)
	}
}

// TestAllRateLimitedIsAnUpstream429: when every account is limited the client sees a 429
// that is not marked as the gateway's own refusal and keeps the upstream's retry-after; the
// next request, finding no account at all, is the gateway's 503 no_account, with Retry-After
// the time until the account's mark ends.
func TestAllRateLimitedIsAnUpstream429(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-only", nil)
	if err := e.Mock.SetScript("up-only", mockupstream.Script{Fail: &mockupstream.Failure{Status: 429, RetryAfter: 90 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		status      int
		reject      string
		retryAfters []string // accepted values: the mark's end is seconds away, read a moment later
	}{
		{429, "", []string{"90"}},
		{503, gateway.RejectNoAccount, []string{"89", "90", "91"}},
	} {
		resp := e.post(t, "/v1/messages", jsonBody, nil)
		b := readBody(t, resp)
		if resp.StatusCode != want.status || resp.Header.Get(gateway.HeaderReject) != want.reject ||
			!slices.Contains(want.retryAfters, resp.Header.Get("Retry-After")) {
			t.Fatalf("request %d: status %d reject %q retry-after %q: %s", i, resp.StatusCode,
				resp.Header.Get(gateway.HeaderReject), resp.Header.Get("Retry-After"), b)
		}
	}
	if n := e.Mock.Stats("up-only").Requests; n != 1 {
		t.Errorf("the rate-limited account got %d requests, want 1", n)
	}
}

// TestFirstEventErrorFailsOver: a stream whose very first event is an overloaded error has
// sent the client nothing, so another account may serve it.
func TestFirstEventErrorFailsOver(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-first", func(a *store.Account) { a.Priority = 10 })
	e.account(t, "up-second", func(a *store.Account) { a.Priority = 20 })
	if err := e.Mock.SetScript("up-first", mockupstream.Script{Fail: &mockupstream.Failure{Kind: mockupstream.FailError, After: 0}, FailTimes: 1}); err != nil {
		t.Fatal(err)
	}
	resp := e.post(t, "/v1/messages", streamBody, nil)
	got := readBody(t, resp)
	ex := e.tap.Exchanges()
	if resp.StatusCode != 200 || len(ex) != 2 || !bytes.Equal(got, ex[1].Body()) {
		t.Fatalf("status %d after %d attempts; want the second account's stream", resp.StatusCode, len(ex))
	}
}

// TestClientLeavesMidStream: the upstream answer is read to its end and billed in full,
// flagged partial; the account is not marked.
func TestClientLeavesMidStream(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	acct := e.account(t, "up-slow", nil)
	if err := e.Mock.SetScript("up-slow", mockupstream.Script{Events: 30, Interval: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.node.URL+"/v1/messages", strings.NewReader(streamBody))
	req.Header.Set("X-Api-Key", e.tenant.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	cancel() // leave after the first bytes
	resp.Body.Close()

	rows := usageRows(t, e.Store, e.tenant.User.ID, 1)
	log := gatewaytest.MockLog(t, e.Mock, "up-slow", 1)
	if !log[0].Completed {
		t.Fatalf("the upstream answer was not read to its end: %+v", log[0])
	}
	if !rows[0].Partial || rowUsage(rows[0]) != mockUsage(log[0].Usage) {
		t.Errorf("row %+v; want partial with the full usage %+v", rows[0], log[0].Usage)
	}
	if a := gatewaytest.Account(t, e.Store, acct.ID); !a.Available(time.Now()) {
		t.Errorf("a client leaving marked the account")
	}
}

// uniqueBody is a JSON request of its own conversation (no shared sticky session).
func uniqueBody(tag string) string {
	return `{"model":"claude-sonnet-5-5","max_tokens":100,"messages":[{"role":"user","content":"` + tag + `"}]}`
}

// TestFirstEventClientErrorIsRelayedOnce: an error event about the request itself, even as
// the very first event, is relayed once and not failed over.
func TestFirstEventClientErrorIsRelayedOnce(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-first", func(a *store.Account) { a.Priority = 10 })
	e.account(t, "up-second", func(a *store.Account) { a.Priority = 20 })
	if err := e.Mock.SetScript("up-first", mockupstream.Script{Fail: &mockupstream.Failure{Kind: mockupstream.FailError, After: 0, ErrorType: "invalid_request_error"}}); err != nil {
		t.Fatal(err)
	}
	resp := e.post(t, "/v1/messages", streamBody, nil)
	got := readBody(t, resp)
	if resp.StatusCode != 200 || !bytes.Equal(got, e.tap.Exchanges()[0].Body()) || bytes.Count(got, []byte("event: error")) != 1 {
		t.Fatalf("status %d:\n%s", resp.StatusCode, got)
	}
	if n := e.Mock.Stats("up-second").Requests; n != 0 {
		t.Fatalf("a client error failed over")
	}
}
