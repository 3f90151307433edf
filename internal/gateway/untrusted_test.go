package gateway_test

import (
	"context"
	"encoding/json"
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
