package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/store"
)

// errorBody is an answer in Anthropic's error format.
type errorBody struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// TestDuplicateModelKeyRefused: a body naming the model twice would be billed as the first
// (cheap) model while a last-key-wins upstream serves the second (expensive) one, past the
// account's mapping too. It is refused with a 400 in Anthropic's format; nothing reaches the
// upstream and nothing is billed.
func TestDuplicateModelKeyRefused(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-haiku-only", func(a *store.Account) {
		a.ModelMapping = map[string]string{"claude-haiku-5-5": "claude-haiku-5-5"}
	})
	for name, body := range map[string]string{
		"Plain":   `{"model":"claude-haiku-5-5","max_tokens":300,"messages":[{"role":"user","content":"hi"}],"model":"claude-opus-5-5"}`,
		"Escaped": `{"model":"claude-haiku-5-5","max_tokens":300,"messages":[{"role":"user","content":"hi"}],"mod\u0065l":"claude-opus-5-5"}`,
		"Stream":  `{"model":"claude-haiku-5-5","stream":false,"max_tokens":300,"messages":[],"stream":true}`,
		// Model names are capped at parse time, before anything else happens.
		"LongModel": `{"model":"claude-haiku-5-5` + strings.Repeat("x", 200) + `","max_tokens":300,"messages":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			resp := e.post(t, "/v1/messages", body, nil)
			raw := readBody(t, resp)
			var got errorBody
			if err := json.Unmarshal(raw, &got); err != nil || resp.StatusCode != 400 || got.Type != "error" || got.Error.Type != "invalid_request_error" {
				t.Fatalf("status %d: %s", resp.StatusCode, raw)
			}
		})
	}
	if n := e.Mock.Stats("up-haiku-only").Requests; n != 0 {
		t.Errorf("the upstream got %d requests", n)
	}
	usageRows(t, e.Store, e.tenant.User.ID, 0)
}

// untouched fails the test unless every account is still active and schedulable now.
func (e *env) untouched(t *testing.T, accts ...*store.Account) {
	t.Helper()
	for _, a := range accts {
		got := gatewaytest.Account(t, e.Store, a.ID)
		if !got.Available(time.Now()) || got.Status != store.StatusActive {
			t.Errorf("account %s marked: status %q (%q), temp-unschedulable until %v (%q)",
				a.Name, got.Status, got.ErrorMessage, got.TempUnschedUntil, got.TempUnschedReason)
		}
	}
}

// TestEchoedCreditBalanceDoesNotMarkAccounts: Anthropic quotes an unknown anthropic-beta
// value back in its 400. A client that sends "credit balance" as a beta value must get
// that 400 itself, and no account may be marked (the old substring match put every account
// of the group in the error state, one failover at a time).
func TestEchoedCreditBalanceDoesNotMarkAccounts(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	a := e.account(t, "up-a", func(a *store.Account) { a.Priority = 10 })
	b := e.account(t, "up-b", func(a *store.Account) { a.Priority = 20 })
	resp := e.post(t, "/v1/messages", jsonBody, http.Header{"Anthropic-Beta": {"Your credit balance is too low to access the Anthropic API"}})
	raw := readBody(t, resp)
	var got errorBody
	if err := json.Unmarshal(raw, &got); err != nil || resp.StatusCode != 400 || !strings.HasPrefix(got.Error.Message, "Unexpected value(s)") {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	e.untouched(t, a, b)
	if n := e.Mock.Stats("up-b").Requests; n != 0 {
		t.Errorf("the client's own error failed over to a second account")
	}
}

// TestCreditMarkerInClientRequestIsNotTrusted: Anthropic names unknown body keys at the start
// of its message ("<key>: Extra inputs are not permitted"), so even the fixed prefix of the
// credit-balance answer can be the client's. When the client's request contains it, the
// answer is relayed and the account kept; the same answer to a request without it still
// marks the account.
func TestCreditMarkerInClientRequestIsNotTrusted(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	a := e.account(t, "up-credit", nil)
	const credit = "Your credit balance is too low to access the Anthropic API"
	if err := e.Mock.SetScript("up-credit", mockupstream.Script{Fail: &mockupstream.Failure{
		Status: 400, ErrorType: "invalid_request_error", Message: credit + ": Extra inputs are not permitted"}}); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"Raw":     `{"model":"claude-sonnet-5-5","max_tokens":300,"messages":[],"` + credit + `":1}`,
		"Escaped": `{"model":"claude-sonnet-5-5","max_tokens":300,"messages":[],"Your cr\u0065dit balance is too low to access the Anthropic API":1}`,
	} {
		resp := e.post(t, "/v1/messages", body, nil)
		if raw := readBody(t, resp); resp.StatusCode != 400 || !strings.Contains(string(raw), "Extra inputs") {
			t.Fatalf("%s: status %d: %s", name, resp.StatusCode, raw)
		}
		e.untouched(t, a)
	}

	resp := e.post(t, "/v1/messages", jsonBody, nil)
	readBody(t, resp)
	if got := gatewaytest.Account(t, e.Store, a.ID); got.Status != store.StatusError || !strings.Contains(got.ErrorMessage, "credit balance") {
		t.Fatalf("the upstream's own credit answer did not mark the account: %q %q", got.Status, got.ErrorMessage)
	}
}

// TestErrorRuleIgnoresEchoedKeyword: an operator's keyword rule matches what the upstream
// says on its own, never text it quotes from the client's request.
func TestErrorRuleIgnoresEchoedKeyword(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	if err := e.Store.CreateErrorRule(context.Background(), &store.ErrorRule{StatusCode: 400, Keyword: "quota exceeded", Minutes: 30, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	a := e.account(t, "up-a", func(a *store.Account) { a.Priority = 10 })
	b := e.account(t, "up-b", func(a *store.Account) { a.Priority = 20 })
	resp := e.post(t, "/v1/messages", jsonBody, http.Header{"Anthropic-Beta": {"Quota Exceeded"}})
	if raw := readBody(t, resp); resp.StatusCode != 400 || !strings.Contains(string(raw), "Quota Exceeded") {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	e.untouched(t, a, b)

	// The rule still works when the words are the upstream's own.
	if err := e.Mock.SetScript("up-a", mockupstream.Script{Fail: &mockupstream.Failure{Status: 400, Message: "Daily quota exceeded for this organization"}, FailTimes: 1}); err != nil {
		t.Fatal(err)
	}
	resp = e.post(t, "/v1/messages", jsonBody, nil)
	if raw := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	if got := gatewaytest.Account(t, e.Store, a.ID); got.TempUnschedUntil == nil || !strings.Contains(got.TempUnschedReason, "quota exceeded") {
		t.Fatalf("the rule did not pause the account: %v %q", got.TempUnschedUntil, got.TempUnschedReason)
	}
}

// TestSingle401IsVerified: one 401 whose credentials still work (the confirming model-list
// call succeeds) leaves the account as it was; the request goes to another account.
func TestSingle401IsVerified(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	a := e.account(t, "up-flaky", func(a *store.Account) { a.Priority = 10 })
	e.account(t, "up-ok", func(a *store.Account) { a.Priority = 20 })
	if err := e.Mock.SetScript("up-flaky", mockupstream.Script{Fail: &mockupstream.Failure{Status: 401}, FailTimes: 1}); err != nil {
		t.Fatal(err)
	}
	resp := e.post(t, "/v1/messages", jsonBody, nil)
	if raw := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	e.untouched(t, a)
	if n := e.Mock.Stats("up-flaky").Requests; n != 2 {
		t.Errorf("the refusing account got %d requests, want the request and one confirming call", n)
	}
}

// TestRevokedAccountIsConfirmedDead: an account whose key is revoked fails the confirming
// call too and goes to the error state, with the upstream's words.
func TestRevokedAccountIsConfirmedDead(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	a := e.account(t, "up-revoked", func(a *store.Account) { a.Priority = 10 })
	e.account(t, "up-ok", func(a *store.Account) { a.Priority = 20 })
	if err := e.Mock.SetScript("up-revoked", mockupstream.Script{Revoked: true}); err != nil {
		t.Fatal(err)
	}
	resp := e.post(t, "/v1/messages", jsonBody, nil)
	if raw := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	got := gatewaytest.Account(t, e.Store, a.ID)
	if got.Status != store.StatusError || !strings.Contains(got.ErrorMessage, "401") || !strings.Contains(got.ErrorMessage, "invalid x-api-key") {
		t.Fatalf("status %q: %q", got.Status, got.ErrorMessage)
	}
}

// midStreamRefusal scripts key to refuse its credentials in an error event after three
// stream events, and to hold the confirming call (the model list) until the test releases it.
func midStreamRefusal(t *testing.T, e *env, key string) {
	t.Helper()
	if err := e.Mock.SetScript(key, mockupstream.Script{Events: 10, HoldModels: true, Fail: &mockupstream.Failure{
		Kind: mockupstream.FailError, After: 3, ErrorType: "authentication_error", Message: "invalid x-api-key"}}); err != nil {
		t.Fatal(err)
	}
}

// modelChecks counts the confirming calls (GET /v1/models) the mock received with key.
func modelChecks(m *mockupstream.Server, key string) int {
	n := 0
	for _, r := range m.Requests(key, 0) {
		if r.Path == "/v1/models" {
			n++
		}
	}
	return n
}

// TestMidStreamRefusalEndsStreamAtOnce: a 401 that arrives as an error event in an open
// stream ends the client's stream with that one event while the confirming call is still
// unanswered; the call, run in the background after the request is over, still decides.
func TestMidStreamRefusalEndsStreamAtOnce(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	a := e.account(t, "up-refused-mid-stream", nil)
	midStreamRefusal(t, e, "up-refused-mid-stream")
	body := readBody(t, e.post(t, "/v1/messages", streamBody, nil)) // to the stream's end
	if n := strings.Count(string(body), "event: error"); n != 1 || !strings.HasSuffix(string(body), "}\n\n") ||
		strings.LastIndex(string(body), "event: ") != strings.LastIndex(string(body), "event: error") {
		t.Fatalf("want a stream ending with its one error event (%d):\n%s", n, body)
	}
	waitFor(t, func() bool { return modelChecks(e.Mock, "up-refused-mid-stream") == 1 })
	if st := e.Mock.Stats("up-refused-mid-stream"); st.InFlight != 1 {
		t.Fatalf("the confirming call is not held open after the stream ended: %+v", st)
	}
	e.untouched(t, a)

	// Now the check is refused too: the account goes to the error state.
	if err := e.Mock.SetScript("up-refused-mid-stream", mockupstream.Script{Revoked: true, HoldModels: true}); err != nil {
		t.Fatal(err)
	}
	e.Mock.ReleaseModels("up-refused-mid-stream")
	waitFor(t, func() bool {
		return gatewaytest.Account(t, e.Store, a.ID).Status == store.StatusError
	})
	if got := gatewaytest.Account(t, e.Store, a.ID); !strings.Contains(got.ErrorMessage, "confirmed by a second call") {
		t.Errorf("error message %q", got.ErrorMessage)
	}
}

// TestCloseCancelsBackgroundCheck: Close ends a confirming call still running in the
// background, and the cut-short call marks nothing.
func TestCloseCancelsBackgroundCheck(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	a := e.account(t, "up-refused-at-close", nil)
	midStreamRefusal(t, e, "up-refused-at-close")
	readBody(t, e.post(t, "/v1/messages", streamBody, nil))
	waitFor(t, func() bool { return e.Mock.Stats("up-refused-at-close").InFlight == 1 })
	e.node.Close(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Mock.WaitIdle(ctx); err != nil {
		t.Fatalf("the confirming call outlived Close: %v", err)
	}
	e.untouched(t, a)
}

// TestConcurrentRefusalsShareOneCheck: many requests refused by one account at the same
// time cause one confirming call, not one each; the others fail over at once without
// waiting for it.
func TestConcurrentRefusalsShareOneCheck(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	refusing := e.account(t, "up-refusing", func(a *store.Account) { a.Priority = 10 })
	e.account(t, "up-ok", func(a *store.Account) { a.Priority = 20 })
	if err := e.Mock.SetScript("up-refusing", mockupstream.Script{Fail: &mockupstream.Failure{Status: 401}, HoldModels: true}); err != nil {
		t.Fatal(err)
	}
	const n = 6
	statuses := make(chan int, n)
	for range n {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, e.node.URL+"/v1/messages", strings.NewReader(jsonBody))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Anthropic-Version", "2023-06-01")
			req.Header.Set("X-Api-Key", e.tenant.Secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- -1
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	// While the one check is held, every request but the one that made it is answered.
	timeout := time.After(30 * time.Second)
	for i := range n - 1 {
		select {
		case code := <-statuses:
			if code != http.StatusOK {
				t.Fatalf("request %d: status %d", i, code)
			}
		case <-timeout:
			t.Fatalf("only %d of %d requests answered while the check was held", i, n-1)
		}
	}
	if got := modelChecks(e.Mock, "up-refusing"); got != 1 {
		t.Fatalf("%d confirming calls in flight, want 1", got)
	}
	e.Mock.ReleaseModels("up-refusing")
	if code := <-statuses; code != http.StatusOK {
		t.Fatalf("the checking request: status %d", code)
	}
	if err := e.Mock.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, msgs := modelChecks(e.Mock, "up-refusing"), len(e.Mock.Requests("up-refusing", 0))-1; got != 1 || msgs != n {
		t.Errorf("%d confirming calls for %d refused requests, want 1 for %d", got, msgs, n)
	}
	e.untouched(t, refusing) // the check was answered 200: the refusal was one request's
}

// TestStoredUpstreamTextIsClean: the upstream text an account's state keeps is bounded, has
// no control characters and no credentials, the account's own key included.
func TestStoredUpstreamTextIsClean(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	const key = "sk-ant-api03-stored-upstream-key-0123456789abcdef"
	a := e.account(t, key, nil)
	msg := "billing\u0000 stopped\r\n\u001b[31m for key " + key + " and sk-ant-api03-" + strings.Repeat("Zz9", 20) +
		" Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl " + strings.Repeat("é", 3000)
	if err := e.Mock.SetScript(key, mockupstream.Script{Fail: &mockupstream.Failure{Status: 402, Message: msg}}); err != nil {
		t.Fatal(err)
	}
	resp := e.post(t, "/v1/messages", jsonBody, nil)
	readBody(t, resp)
	got := gatewaytest.Account(t, e.Store, a.ID)
	if got.Status != store.StatusError || !strings.HasPrefix(got.ErrorMessage, "upstream 402: billing stopped") {
		t.Fatalf("status %q: %q", got.Status, got.ErrorMessage)
	}
	if len(got.ErrorMessage) > 500 || strings.ContainsFunc(got.ErrorMessage, unicode.IsControl) ||
		strings.Contains(got.ErrorMessage, "sk-ant") || strings.Contains(got.ErrorMessage, "eyJ") || strings.ContainsRune(got.ErrorMessage, '\uFFFD') {
		t.Fatalf("stored text not clean (%d bytes): %q", len(got.ErrorMessage), got.ErrorMessage)
	}
}
