package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"google.golang.org/genai"

	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/provider/gemini"
	"github.com/fluxcode/fluxcode/internal/store"
)

// googleLoginAccount creates a Gemini account of type oauth holding a fresh Google login of
// the mock (signed in and onboarded), and returns it with the login.
func (c *cluster) googleLoginAccount(t *testing.T, email string, groups []int64) (*store.Account, mockupstream.Login) {
	t.Helper()
	l := c.Mock.NewGoogleLogin(email)
	project := c.Mock.CodeAssistUser(email).Project
	a := c.account(t, l.AccessToken, groups, func(a *store.Account) {
		a.Platform, a.Type = store.PlatformGemini, store.AccountTypeOAuth
		a.Credentials = store.Credentials{AccessToken: l.AccessToken, RefreshToken: l.RefreshToken, ExpiresAt: l.ExpiresAt,
			Extra: map[string]string{gemini.ExtraProject: project, gemini.ExtraEmail: email}}
	})
	return a, l
}

// TestCodeAssistSDK: Google's genai SDK, speaking the plain Gemini API to the gateway, is
// served by a Gemini CLI login through Code Assist: every request goes up in Code Assist's
// envelope with the login's token and project, every answer comes down unwrapped (JSON,
// SSE), the text and usage are the mock's, and each generation is one ledger row with the
// mock's tokens.
func TestCodeAssistSDK(t *testing.T) {
	c, ten := geminiSingle(t, config(), gatewaytest.TenantOptions{})
	_, l := c.googleLoginAccount(t, "ada@example.com", []int64{ten.Group.ID})
	if err := c.Mock.SetScript(l.AccessToken, mockupstream.Script{Events: 8, Usage: &mockupstream.Usage{Input: 700, CacheRead: 100, Output: 90}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var got []byte
	client := genaiClient(t, c.nodes[0], ten.Secret, &got)

	resp, err := client.Models.GenerateContent(ctx, geminiModel, genai.Text("json please"), genConfig())
	if err != nil {
		t.Fatalf("GenerateContent: %v", err)
	}
	if resp.Text() != mockupstream.ReplyText(8) || resp.ModelVersion != geminiModel || strings.Contains(string(got), `"response"`) {
		t.Fatalf("text %q model %q body %s", resp.Text(), resp.ModelVersion, got)
	}
	checkUsage(t, resp.UsageMetadata, mockupstream.Usage{Input: 700, CacheRead: 100, Output: 90})

	var text strings.Builder
	var last *genai.GenerateContentResponse
	for chunk, err := range client.Models.GenerateContentStream(ctx, geminiModel, genai.Text("stream please"), genConfig()) {
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		text.WriteString(chunk.Text())
		last = chunk
	}
	if text.String() != mockupstream.ReplyText(8) || strings.Contains(string(got), "traceId") {
		t.Fatalf("streamed %q, body %s", text.String(), got)
	}
	checkUsage(t, last.UsageMetadata, mockupstream.Usage{Input: 700, CacheRead: 100, Output: 90})

	if n, err := client.Models.CountTokens(ctx, geminiModel, genai.Text("count me"), nil); err != nil || n.TotalTokens <= 0 {
		t.Fatalf("count tokens: %+v, %v", n, err)
	}
	if page, err := client.Models.List(ctx, nil); err != nil || len(page.Items) != len(gemini.CodeAssistModels) {
		t.Fatalf("models: %+v, %v", page, err)
	}

	// What went up: Code Assist's methods, the login's token, the envelope, the SDK's own
	// headers; never the client's key.
	sent := c.Mock.Requests(l.AccessToken, 0)
	paths := make([]string, len(sent))
	for i, r := range sent {
		paths[i] = r.Path + "?" + r.RawQuery
		if r.Header.Get("Authorization") != "Bearer "+l.AccessToken || r.Header.Get("X-Goog-Api-Key") != "" ||
			!strings.HasPrefix(r.Header.Get("X-Goog-Api-Client"), "google-genai-sdk/") || strings.Contains(string(r.Body), ten.Secret) {
			t.Errorf("request %s: headers %v", r.Path, r.Header)
		}
	}
	want := "/v1internal:generateContent? /v1internal:streamGenerateContent?alt=sse /v1internal:countTokens? /v1internal:loadCodeAssist?"
	if strings.Join(paths, " ") != want {
		t.Fatalf("upstream calls %v, want %s", paths, want)
	}
	env := gjson.ParseBytes(sent[1].Body)
	if env.Get("model").Str != geminiModel || env.Get("project").Str != c.Mock.CodeAssistUser("ada@example.com").Project ||
		env.Get("user_prompt_id").Str == "" || env.Get("request.contents.0.parts.0.text").Str != "stream please" ||
		env.Get("request.session_id").Str == "" || !env.Get("request.generationConfig.thinkingConfig").Exists() {
		t.Fatalf("envelope %s", sent[1].Body)
	}
	noClientKey(t, c.Mock, l.AccessToken, ten.Secret)

	for _, r := range rows(t, c.Store, store.UsageFilter{UserID: ten.User.ID}, 2) {
		if r.Partial || r.Model != geminiModel || r.InputTokens != 700 || r.CacheReadTokens != 100 || r.OutputTokens != 90 || r.Cost <= 0 {
			t.Errorf("row %+v", r)
		}
	}
}

// TestCodeAssistCLIShapes: the requests Gemini CLI sends (its User-Agent and genai headers,
// streamGenerateContent with alt=sse; and the array stream without it) on a Google login:
// the SSE answer has the plain API's chunks, the last with its finish reason; the array is
// one valid JSON array of unwrapped chunks; both are billed from the unwrapped usage.
func TestCodeAssistCLIShapes(t *testing.T) {
	c, ten := geminiSingle(t, config(), gatewaytest.TenantOptions{})
	_, l := c.googleLoginAccount(t, "cli@example.com", []int64{ten.Group.ID})
	if err := c.Mock.SetScript(l.AccessToken, mockupstream.Script{Events: 5}); err != nil {
		t.Fatal(err)
	}
	resp, got := geminiPost(t, c.nodes[0], "/v1beta/models/"+geminiModel+":streamGenerateContent?alt=sse", "x-goog-api-key", ten.Secret, cliBody)
	events := upstreamEvents(t, got)
	if resp.StatusCode != http.StatusOK || len(events) != 5 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("sse: %d %d events %s", resp.StatusCode, len(events), got)
	}
	for i, ev := range events {
		if !gjson.GetBytes(ev.Data, "candidates").Exists() || gjson.GetBytes(ev.Data, "response").Exists() {
			t.Fatalf("chunk %d: %s", i, ev.Data)
		}
	}
	if gjson.GetBytes(events[4].Data, "candidates.0.finishReason").Str != "STOP" {
		t.Fatalf("last chunk has no finish reason: %s", events[4].Data)
	}
	up := c.Mock.Requests(l.AccessToken, 1)[0]
	if up.Path != "/v1internal:streamGenerateContent" || up.RawQuery != "alt=sse" ||
		up.Header.Get("User-Agent") != "GeminiCLI/0.61.0/"+geminiModel+" (linux; x64; terminal)" ||
		up.Header.Get("X-Goog-Api-Client") != "google-genai-sdk/1.30.0 gl-node/v20.20.2" ||
		gjson.GetBytes(up.Body, "request.systemInstruction.parts.0.text").Str != "You are an interactive CLI agent." {
		t.Fatalf("upstream request %s?%s %v %s", up.Path, up.RawQuery, up.Header, up.Body)
	}

	resp, got = geminiPost(t, c.nodes[0], "/v1beta/models/"+geminiModel+":streamGenerateContent", "bearer", ten.Secret, cliBody)
	var chunks []map[string]json.RawMessage
	if err := json.Unmarshal(got, &chunks); resp.StatusCode != http.StatusOK || err != nil || len(chunks) != 5 || chunks[0]["candidates"] == nil {
		t.Fatalf("array: %d %v %s", resp.StatusCode, err, got)
	}
	want := gatewaytest.MockLog(t, c.Mock, l.AccessToken, 2)
	for i, r := range rows(t, c.Store, store.UsageFilter{UserID: ten.User.ID}, 2) {
		u := want[i].Usage
		if r.Partial || r.InputTokens != u.Input || r.OutputTokens != u.Output || r.Cost <= 0 {
			t.Errorf("row %+v; the mock reported %+v", r, u)
		}
	}
}

// TestCodeAssistFailoverPerClass: a Google login's failures are Google's, read as for API
// keys: a refusal is confirmed with loadCodeAssist (a login that still works keeps no mark,
// a revoked one is the error state), a 429 rests the account for the RetryInfo delay, a 503
// for the overload cooldown; each time the client is served by the group's other account.
// The admin's account test reads the login's answer unwrapped.
func TestCodeAssistFailoverPerClass(t *testing.T) {
	cfg := config()
	cfg.OverloadCooldown = 7 * time.Minute
	for _, tc := range []struct {
		name   string
		script mockupstream.Script
		check  func(a *store.Account, sent time.Time) bool
	}{
		{"RefusedOnce", mockupstream.Script{Fail: &mockupstream.Failure{Status: 403}, FailTimes: 1},
			func(a *store.Account, _ time.Time) bool {
				return a.Available(time.Now()) && a.Status == store.StatusActive
			}},
		{"Revoked", mockupstream.Script{Revoked: true},
			func(a *store.Account, _ time.Time) bool {
				return a.Status == store.StatusError && strings.Contains(a.ErrorMessage, "401")
			}},
		{"ResourceExhausted", mockupstream.Script{Fail: &mockupstream.Failure{Status: 429, RetryAfter: 37 * time.Second}, FailTimes: 1},
			func(a *store.Account, sent time.Time) bool {
				return gatewaytest.Near(a.RateLimitedUntil, sent.Add(37*time.Second), 3*time.Second)
			}},
		{"Unavailable", mockupstream.Script{Fail: &mockupstream.Failure{Status: 503}, FailTimes: 1},
			func(a *store.Account, sent time.Time) bool {
				return gatewaytest.Near(a.OverloadedUntil, sent.Add(7*time.Minute), 3*time.Second)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ten := geminiSingle(t, cfg, gatewaytest.TenantOptions{})
			first, l := c.googleLoginAccount(t, "first@example.com", []int64{ten.Group.ID})
			c.geminiAccount(t, "up-second", []int64{ten.Group.ID}, func(a *store.Account) { a.Priority = first.Priority + 10 })
			if err := c.Mock.SetScript(l.AccessToken, tc.script); err != nil {
				t.Fatal(err)
			}
			sent := time.Now()
			if _, err := genaiClient(t, c.nodes[0], ten.Secret, nil).Models.GenerateContent(context.Background(), geminiModel, genai.Text("x"), nil); err != nil {
				t.Fatalf("the SDK saw an error: %v", err)
			}
			if c.Mock.Stats(l.AccessToken).Requests == 0 || c.Mock.Stats("up-second").Requests != 1 {
				t.Fatal("not served by the second account after the login failed")
			}
			a, err := c.Store.GetAccount(context.Background(), first.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(a, sent) {
				t.Errorf("account after %s: status %q %q, rate limited %v, overloaded %v", tc.name, a.Status, a.ErrorMessage, a.RateLimitedUntil, a.OverloadedUntil)
			}
		})
	}
	c, ten := geminiSingle(t, cfg, gatewaytest.TenantOptions{})
	acct, l := c.googleLoginAccount(t, "tested@example.com", []int64{ten.Group.ID})
	if err := c.Mock.SetScript(l.AccessToken, mockupstream.Script{Events: 3}); err != nil {
		t.Fatal(err)
	}
	if res := c.nodes[0].Gateway.TestAccount(context.Background(), acct, ""); !res.OK || res.Reply != mockupstream.ReplyText(3) {
		t.Fatalf("account test: %+v", res)
	}
}
