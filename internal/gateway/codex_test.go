package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/login"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	"github.com/fluxcode/fluxcode/internal/provider/openai"
	"github.com/fluxcode/fluxcode/internal/store"
)

// codexEnv is one node serving an OpenAI group whose ChatGPT logins are renewed against the
// mock's auth.openai.com and served by its Codex backend.
func codexEnv(t *testing.T, cfg gateway.Config) *oaiEnv {
	t.Helper()
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{Providers: []provider.Provider{anthropic.New(), openai.New()}})
	lc := login.OpenAI()
	lc.AuthorizeURL, lc.TokenURL = d.Mock.URL()+"/oauth/authorize", d.Mock.URL()+"/oauth/token"
	reg, err := login.NewRegistry([]login.Config{lc}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Logins = login.NewRefresher(d.Store, d.Coord, reg, nil, "n1", 0)
	e := &oaiEnv{Deps: d}
	e.node = gatewaytest.Start(t, d, cfg, "n1", nil)
	g := &store.Group{Name: "codex-group", Platform: store.PlatformOpenAI, BillingType: store.BillingBalance,
		RateMultiplierPPM: 1_000_000, Status: store.StatusActive}
	if err := d.Store.CreateGroup(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	e.oai = gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{Group: g})
	return e
}

// chatgptAccount stores a ChatGPT login of the mock as an OpenAI oauth account of the group.
func (e *oaiEnv) chatgptAccount(t *testing.T, mutate func(*store.Account)) (*store.Account, mockupstream.Login) {
	t.Helper()
	l := e.Mock.NewChatGPTLogin("codex@example.com")
	a := gatewaytest.NewAccount(t, e.Deps, l.AccessToken, []int64{e.oai.Group.ID}, func(a *store.Account) {
		a.Name, a.Platform, a.Type = "chatgpt-"+l.AccountID, store.PlatformOpenAI, store.AccountTypeOAuth
		a.Credentials = store.Credentials{AccessToken: l.AccessToken, RefreshToken: l.RefreshToken, ExpiresAt: l.ExpiresAt,
			Extra: map[string]string{openai.ExtraChatGPTAccountID: l.AccountID}}
		if mutate != nil {
			mutate(a)
		}
	})
	return a, l
}

// codexCLIBody is the shape of the Codex CLI's turn (0.169, custom provider): no
// instructions member, store false, the encrypted reasoning asked back, the session as
// prompt_cache_key.
const codexCLIBody = `{"model":"gpt-6.1-sol","input":[{"type":"message","role":"developer","content":[{"type":"input_text","text":"<permissions instructions>sandbox read-only</permissions instructions>"}]},{"type":"message","role":"user","content":[{"type":"input_text","text":"say hi"}]}],` +
	`"tools":[{"type":"function","name":"exec_command","description":"Runs a command in a PTY","strict":false,"parameters":{"type":"object","properties":{"cmd":{"type":"string"}},"required":["cmd"],"additionalProperties":false}}],` +
	`"tool_choice":"auto","parallel_tool_calls":false,"reasoning":{"effort":"medium","summary":"auto"},"store":false,"stream":true,` +
	`"include":["reasoning.encrypted_content"],"prompt_cache_key":"019a3f6c-5b7e-7c21-9d1e-2f0a4b6c8d10","text":{"verbosity":"low"},"client_metadata":{"x-codex-window-id":"w-1"}}`

func codexCLIHeaders(key string) http.Header {
	h := bearer(key)
	for k, v := range map[string]string{
		"Accept": "text/event-stream", "Originator": "codex_exec", "Session-Id": "019a3f6c-5b7e-7c21-9d1e-2f0a4b6c8d10",
		"Thread-Id": "019a3f6c-5b7e-7c21-9d1e-2f0a4b6c8d10", "X-Client-Request-Id": "019a3f6c-0000-7000-8000-000000000001",
		"X-Codex-Turn-Metadata": `{"turn_id":"t-1"}`, "X-Codex-Window-Id": "w-1", "X-Codex-Beta-Features": "remote_compaction_v2",
		"User-Agent": "codex_exec/0.169.0 (Debian 12.0.0; x86_64) xterm (codex_exec; 0.169.0)", "OpenAI-Beta": "responses=experimental",
	} {
		h.Set(k, v)
	}
	return h
}

// The Codex CLI's request, on a ChatGPT login: served from the Codex backend with the
// login's token and account, the CLI's own headers kept, the backend's constraints met,
// billed from response.completed, and the x-codex windows recorded on the account.
func TestCodexCLIServedOnChatGPTLogin(t *testing.T) {
	e := codexEnv(t, testConfig())
	a, l := e.chatgptAccount(t, nil)
	if err := e.Mock.SetScript(l.AccessToken, mockupstream.Script{Usage: &mockupstream.Usage{Input: 100, CacheRead: 30, Output: 20},
		Unified: &mockupstream.Unified{FiveHour: 0.25, SevenDay: 0.5}}); err != nil {
		t.Fatal(err)
	}
	resp := e.do(t, "POST", "/v1/responses", codexCLIBody, codexCLIHeaders(e.oai.Secret))
	body := string(readBody(t, resp))
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") ||
		!strings.Contains(body, "event: response.completed") {
		t.Fatalf("status %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	reqs := e.Mock.Requests(l.AccessToken, 1)
	if len(reqs) != 1 {
		t.Fatalf("the backend saw %d requests", len(reqs))
	}
	up := reqs[0]
	for name, want := range map[string]string{"Authorization": "Bearer " + l.AccessToken, "Chatgpt-Account-Id": l.AccountID,
		"Originator": "codex_exec", "Session-Id": "019a3f6c-5b7e-7c21-9d1e-2f0a4b6c8d10", "X-Codex-Turn-Metadata": `{"turn_id":"t-1"}`,
		"X-Codex-Beta-Features": "remote_compaction_v2", "Accept": "text/event-stream"} {
		if got := up.Header.Get(name); got != want {
			t.Errorf("upstream %s = %q, want %q", name, got, want)
		}
	}
	b := gjson.ParseBytes(up.Body)
	if up.Path != "/backend-api/codex/responses" || b.Get("instructions").Type != gjson.String || b.Get("store").Type != gjson.False ||
		b.Get("include.0").Str != "reasoning.encrypted_content" || b.Get("tools.0.name").Str != "exec_command" ||
		b.Get("prompt_cache_key").Str == "" {
		t.Fatalf("upstream %s %s", up.Path, up.Body)
	}
	u := waitUsage(t, e, a.ID)
	if u.InputTokens != 100 || u.CacheReadTokens != 30 || u.OutputTokens != 20 || !u.Stream || u.Cost <= 0 {
		t.Fatalf("billed %+v", u)
	}
	got := waitAccount(t, &env{Deps: e.Deps}, a.ID, func(a *store.Account) bool { return a.Windows != nil })
	if w := got.Windows; len(w.Windows) != 2 || w.Windows[0].Name != "5h" || w.Windows[0].Utilization != 0.25 ||
		w.Windows[1].Name != "7d" || w.Windows[1].Utilization != 0.5 {
		t.Fatalf("windows %+v", got.Windows)
	}
}

// An SDK's plain request (no stream, a string input, an output limit) on a ChatGPT login:
// the backend gets what it demands, and the client one JSON response with the output and
// usage.
func TestResponsesJSONClientServedFromCodexStream(t *testing.T) {
	e := codexEnv(t, testConfig())
	a, l := e.chatgptAccount(t, nil)
	resp := e.do(t, "POST", "/v1/responses", `{"model":"gpt-6-sol","input":"hi","max_output_tokens":64,"temperature":0.2}`, bearer(e.oai.Secret))
	raw := readBody(t, resp)
	r := gjson.ParseBytes(raw)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
		r.Get("object").Str != "response" || r.Get("status").Str != "completed" || r.Get("output.0.content.0.text").Str == "" ||
		r.Get("usage.output_tokens").Int() == 0 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	up := gjson.ParseBytes(e.Mock.Requests(l.AccessToken, 1)[0].Body)
	if up.Get("stream").Type != gjson.True || !up.Get("input").IsArray() || up.Get("input.0.content.0.text").Str != "hi" ||
		up.Get("max_output_tokens").Exists() || up.Get("temperature").Exists() || up.Get("instructions").Str != "" {
		t.Fatalf("upstream body %s", up.Raw)
	}
	if u := waitUsage(t, e, a.ID); u.Stream || u.OutputTokens != r.Get("usage.output_tokens").Int() {
		t.Fatalf("billed %+v", u)
	}
}

// Chat Completions is not a ChatGPT login's: with only such accounts the request is refused
// with the reason; with an API-key account beside them, that account serves it.
func TestChatCompletionsSkipChatGPTLogins(t *testing.T) {
	e := codexEnv(t, testConfig())
	_, l := e.chatgptAccount(t, nil)
	resp := e.do(t, "POST", "/v1/chat/completions", oaiChat, bearer(e.oai.Secret))
	raw := readBody(t, resp)
	if _, msg, _ := openAIError(t, raw); resp.StatusCode != 400 || !strings.Contains(msg, "Responses API") {
		t.Fatalf("chat on ChatGPT logins only: %d %s", resp.StatusCode, raw)
	}
	platform := gatewaytest.NewAccount(t, e.Deps, "sk-platform", []int64{e.oai.Group.ID}, func(a *store.Account) {
		a.Platform, a.Priority = store.PlatformOpenAI, 99
	})
	if resp := e.do(t, "POST", "/v1/chat/completions", oaiChat, bearer(e.oai.Secret)); resp.StatusCode != 200 {
		t.Fatalf("chat with an API-key account in the group: %d %s", resp.StatusCode, readBody(t, resp))
	}
	if e.Mock.Stats("sk-platform").Completed != 1 {
		t.Fatal("the API-key account did not serve the chat request")
	}
	// The API-key account rate-limited: the ChatGPT login still does not serve chat, and the
	// refusal is the retryable one for no available account.
	until := time.Now().Add(time.Hour)
	if err := e.Store.MarkAccount(context.Background(), platform.ID, store.AccountMark{RateLimitedUntil: &until}); err != nil {
		t.Fatal(err)
	}
	if err := invalidate.Publish(context.Background(), e.Coord, invalidate.Account, platform.ID); err != nil {
		t.Fatal(err)
	}
	var resp2 *http.Response
	for range 100 { // the node drops its copy of the account on the invalidation
		if resp2 = e.do(t, "POST", "/v1/chat/completions", oaiChat, bearer(e.oai.Secret)); resp2.StatusCode != 200 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if raw := readBody(t, resp2); resp2.StatusCode != 503 || e.Mock.Stats(l.AccessToken).Requests != 0 {
		t.Fatalf("chat with the API-key account rate-limited: %d %s", resp2.StatusCode, raw)
	}
}

// An access token that expires mid-traffic: one refresh call at auth.openai.com, every
// request retried on the same login and served with the new token.
func TestExpiredChatGPTLoginIsRenewedOnceAndRetried(t *testing.T) {
	e := codexEnv(t, testConfig())
	a, l := e.chatgptAccount(t, nil)
	e.Mock.ExpireAccess(l.AccessToken)
	const n = 10
	allServed(t, n, func() int {
		resp := e.do(t, "POST", "/v1/responses", codexCLIBody, codexCLIHeaders(e.oai.Secret))
		readBody(t, resp)
		return resp.StatusCode
	})
	if st := e.Mock.OAuthStats(); st.RefreshCalls != 1 || st.Rotations != 1 {
		t.Fatalf("token endpoint saw %+v, want one refresh", st)
	}
	got := gatewaytest.Account(t, e.Store, a.ID)
	if got.Status != store.StatusActive || got.CredentialsVersion != 1 || got.Credentials.RefreshToken == l.RefreshToken ||
		got.Credentials.Extra[openai.ExtraChatGPTAccountID] != l.AccountID {
		t.Fatalf("account after renewal: %q %q v%d extra %v", got.Status, got.ErrorMessage, got.CredentialsVersion, got.Credentials.Extra)
	}
	if served := e.Mock.Stats(got.Credentials.AccessToken).Completed; served != n {
		t.Fatalf("%d answers served with the renewed token, want %d", served, n)
	}
}

// Windows: the 5h window at 96 % pauses the login (pause at 95 %) until it resets; a 429
// usage_limit_reached marks it rate-limited until the reset the body names.
func TestCodexWindowsPauseAndUsageLimitMarks(t *testing.T) {
	cfg := testConfig()
	cfg.SubscriptionPausePercent = 95
	e := codexEnv(t, cfg)
	a, l := e.chatgptAccount(t, nil)
	if err := e.Mock.SetScript(l.AccessToken, mockupstream.Script{Unified: &mockupstream.Unified{FiveHour: 0.96, SevenDay: 0.3}}); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	if resp := e.do(t, "POST", "/v1/responses", codexCLIBody, codexCLIHeaders(e.oai.Secret)); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, readBody(t, resp))
	}
	got := waitAccount(t, &env{Deps: e.Deps}, a.ID, func(a *store.Account) bool { return a.TempUnschedUntil != nil })
	if !gatewaytest.Near(got.TempUnschedUntil, sent.Add(5*time.Hour), 5*time.Second) || !strings.Contains(got.TempUnschedReason, "5h") {
		t.Fatalf("paused until %v (%q), want the 5h reset", got.TempUnschedUntil, got.TempUnschedReason)
	}

	b, lb := e.chatgptAccount(t, nil)
	if err := e.Mock.SetScript(lb.AccessToken, mockupstream.Script{Unified: &mockupstream.Unified{FiveHour: 1, Reset5h: 7_200_000_000_000 /* 2h */}}); err != nil {
		t.Fatal(err)
	}
	sent = time.Now()
	resp := e.do(t, "POST", "/v1/responses", codexCLIBody, codexCLIHeaders(e.oai.Secret))
	if raw := readBody(t, resp); resp.StatusCode != 429 {
		t.Fatalf("only login exhausted: %d %s", resp.StatusCode, raw)
	}
	got = gatewaytest.Account(t, e.Store, b.ID)
	if !gatewaytest.Near(got.RateLimitedUntil, sent.Add(2*time.Hour), 5*time.Second) || got.Status != store.StatusActive {
		t.Fatalf("rate limited until %v (%s), want the usage limit's reset in 2h", got.RateLimitedUntil, got.Status)
	}
}

func waitUsage(t *testing.T, e *oaiEnv, account int64) store.Usage {
	t.Helper()
	for range 500 {
		rows, _, err := e.Store.ListUsage(context.Background(), store.UsageFilter{AccountID: account}, store.Page{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) > 0 {
			return rows[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no usage recorded for account %d", account)
	return store.Usage{}
}

// A ChatGPT login whose refresh token is dead for real: the 401 leads to one refused refresh,
// the account is in error with OpenAI's reason, and another account serves the request.
func TestRevokedChatGPTLoginIsMarkedWithTheReason(t *testing.T) {
	e := codexEnv(t, testConfig())
	a, l := e.chatgptAccount(t, func(a *store.Account) { a.Priority = 1 })
	e.chatgptAccount(t, func(a *store.Account) { a.Priority = 2 })
	e.Mock.ExpireAccess(l.AccessToken)
	e.Mock.RevokeLogin(l.RefreshToken)
	if resp := e.do(t, "POST", "/v1/responses", codexCLIBody, codexCLIHeaders(e.oai.Secret)); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, readBody(t, resp))
	}
	got := gatewaytest.Account(t, e.Store, a.ID)
	if got.Status != store.StatusError || !strings.Contains(got.ErrorMessage, "refresh_token_invalidated") {
		t.Fatalf("revoked login: status %q, message %q", got.Status, got.ErrorMessage)
	}
}

// The model list of a group of ChatGPT logins is the Codex catalogue, in OpenAI's shape.
func TestModelsOfChatGPTLoginsAreTheCodexCatalogue(t *testing.T) {
	e := codexEnv(t, testConfig())
	e.chatgptAccount(t, nil)
	resp := e.do(t, "GET", "/v1/models", "", bearer(e.oai.Secret))
	raw := readBody(t, resp)
	if r := gjson.ParseBytes(raw); resp.StatusCode != 200 || r.Get("object").Str != "list" ||
		r.Get("data.0.id").Str != mockupstream.DefaultCodexModels[0] || r.Get("data.0.object").Str != "model" {
		t.Fatalf("models: %d %s", resp.StatusCode, raw)
	}
}
