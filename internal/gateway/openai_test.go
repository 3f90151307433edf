package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	"github.com/fluxcode/fluxcode/internal/provider/openai"
	"github.com/fluxcode/fluxcode/internal/store"
)

// oaiEnv is one node serving Anthropic and OpenAI, with a tenant in an OpenAI group (oai)
// and one in an Anthropic group (anth).
type oaiEnv struct {
	*gatewaytest.Deps
	node      *gatewaytest.Node
	tap       *gatewaytest.Tap
	oai, anth *gatewaytest.Tenant
}

func newOAIEnv(t *testing.T) *oaiEnv { t.Helper(); return newOAIEnvOn(t, nil) }

// newOAIEnvOn is newOAIEnv on coordinator co (nil: an in-process one).
func newOAIEnvOn(t *testing.T, co coord.Coordinator) *oaiEnv {
	t.Helper()
	return newOAIEnvWith(t, co, testConfig(), gatewaytest.TenantOptions{})
}

// newOAIEnvWith is newOAIEnvOn with the node's configuration and the OpenAI tenant's options
// (its Group is the OpenAI group's).
func newOAIEnvWith(t *testing.T, co coord.Coordinator, cfg gateway.Config, opts gatewaytest.TenantOptions) *oaiEnv {
	t.Helper()
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{Coord: co, Providers: []provider.Provider{anthropic.New(), openai.New()}})
	e := &oaiEnv{Deps: d, tap: gatewaytest.NewTap(t, d.Mock)}
	e.node = gatewaytest.Start(t, d, cfg, "n1", nil)
	g := &store.Group{Name: "openai-group", Platform: store.PlatformOpenAI, BillingType: store.BillingBalance,
		RateMultiplierPPM: 1_000_000, Status: store.StatusActive}
	if err := d.Store.CreateGroup(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	opts.Group = g
	e.oai = gatewaytest.NewTenant(t, d, opts)
	e.anth = gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{})
	return e
}

// account creates an OpenAI API-key account of the OpenAI group, reached through the tap.
func (e *oaiEnv) account(t *testing.T, key string, prio int) *store.Account {
	t.Helper()
	return gatewaytest.NewAccount(t, e.Deps, key, []int64{e.oai.Group.ID}, func(a *store.Account) {
		a.Platform, a.BaseURL, a.Priority = store.PlatformOpenAI, e.tap.URL+"/v1", prio
	})
}

func (e *oaiEnv) do(t *testing.T, method, path, body string, h http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, e.node.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func bearer(key string) http.Header { return http.Header{"Authorization": {"Bearer " + key}} }

const (
	oaiChat         = `{"model":"gpt-6-sol","messages":[{"role":"user","content":"hi"}]}`
	oaiChatStream   = `{"model":"gpt-6-sol","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	oaiResponses    = `{"model":"gpt-6-sol","input":"hi"}`
	oaiResponsesSSE = `{"model":"gpt-6-sol","input":"hi","stream":true}`
)

// openAIError decodes an OpenAI error body, failing t on any other shape.
func openAIError(t *testing.T, body []byte) (typ, message string, code *string) {
	t.Helper()
	var b struct {
		Error *struct {
			Message *string
			Type    *string
			Param   *string
			Code    *string
		}
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Error == nil || b.Error.Message == nil || b.Error.Type == nil ||
		!bytes.Contains(body, []byte(`"param":`)) || !bytes.Contains(body, []byte(`"code":`)) {
		t.Fatalf("not an OpenAI error body: %s", body)
	}
	return *b.Error.Type, *b.Error.Message, b.Error.Code
}

// TestOpenAIFailoverAndMarks: for each class of upstream error on an OpenAI account, whether
// another account serves the request and what the failing account is marked with.
func TestOpenAIFailoverAndMarks(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name     string
		script   mockupstream.Script
		failover bool
		check    func(t *testing.T, a *store.Account)
	}{
		{"ServerError", mockupstream.Script{Fail: &mockupstream.Failure{Status: 500}}, true, func(t *testing.T, a *store.Account) {
			if !a.Available(time.Now()) {
				t.Errorf("a 500 marked the account: %+v", a)
			}
		}},
		{"Overloaded", mockupstream.Script{Fail: &mockupstream.Failure{Status: 503}}, true, func(t *testing.T, a *store.Account) {
			if a.Status != store.StatusActive {
				t.Errorf("status %q", a.Status)
			}
		}},
		{"RateLimited", mockupstream.Script{Fail: &mockupstream.Failure{Status: 429, RetryAfter: 6 * time.Minute, RateLimit: mockupstream.RateLimitAPI, NoRetryAfter: true}}, true,
			func(t *testing.T, a *store.Account) {
				// x-ratelimit-reset-requests: "6m0s", not the default cooldown.
				if a.Status != store.StatusActive || !gatewaytest.Near(a.RateLimitedUntil, now.Add(6*time.Minute), 5*time.Second) {
					t.Errorf("status %q rate limited until %v", a.Status, a.RateLimitedUntil)
				}
			}},
		{"OutOfCredit", mockupstream.Script{Fail: &mockupstream.Failure{Status: 429, ErrorType: "insufficient_quota"}}, true,
			func(t *testing.T, a *store.Account) {
				if a.Status != store.StatusError || a.RateLimitedUntil != nil || !strings.Contains(a.ErrorMessage, "quota") {
					t.Errorf("status %q (%q), rate limited until %v", a.Status, a.ErrorMessage, a.RateLimitedUntil)
				}
			}},
		{"KeyRevoked", mockupstream.Script{Revoked: true}, true, func(t *testing.T, a *store.Account) {
			// The confirming GET /v1/models was refused too.
			if a.Status != store.StatusError || !strings.Contains(a.ErrorMessage, "confirmed") {
				t.Errorf("status %q (%q)", a.Status, a.ErrorMessage)
			}
		}},
		{"RefusedOnce", mockupstream.Script{Fail: &mockupstream.Failure{Status: 403}, FailTimes: 1}, true, func(t *testing.T, a *store.Account) {
			if !a.Available(time.Now()) {
				t.Errorf("one refusal the confirming call contradicts marked the account: %+v", a)
			}
		}},
		{"BadRequest", mockupstream.Script{Fail: &mockupstream.Failure{Status: 400}}, false, func(t *testing.T, a *store.Account) {
			if !a.Available(time.Now()) {
				t.Errorf("the client's 400 marked the account")
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newOAIEnv(t)
			first := e.account(t, "oa-first", 10)
			e.account(t, "oa-second", 20)
			if err := e.Mock.SetScript("oa-first", c.script); err != nil {
				t.Fatal(err)
			}
			resp := e.do(t, http.MethodPost, "/v1/chat/completions", oaiChat, bearer(e.oai.Secret))
			body := readBody(t, resp)
			served := e.Mock.Stats("oa-second").Requests > 0
			if served != c.failover {
				t.Fatalf("failed over: %v, want %v (status %d %s)", served, c.failover, resp.StatusCode, body)
			}
			if c.failover && resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if !c.failover {
				openAIError(t, body) // relayed as the upstream wrote it
			}
			c.check(t, gatewaytest.Account(t, e.Store, first.ID))
		})
	}
}

// TestOpenAINoAccountLeft: with every account failing, the client gets OpenAI's error shape
// and the status of the last failure (an overload is a 503 for OpenAI, not Anthropic's 529).
func TestOpenAINoAccountLeft(t *testing.T) {
	e := newOAIEnv(t)
	e.account(t, "oa-only", 10)
	if err := e.Mock.SetScript("oa-only", mockupstream.Script{Fail: &mockupstream.Failure{Status: 503}}); err != nil {
		t.Fatal(err)
	}
	resp := e.do(t, http.MethodPost, "/v1/responses", oaiResponses, bearer(e.oai.Secret))
	typ, msg, _ := openAIError(t, readBody(t, resp))
	if resp.StatusCode != 503 || typ != "server_error" || strings.Contains(msg, "engine") || resp.Header.Get(gateway.HeaderReject) != "" {
		t.Fatalf("%d %s %q", resp.StatusCode, typ, msg)
	}
}

// TestOpenAIMidStreamError: a failure after the first event reaches the client as exactly
// one error in the API's own form, and the stream is billed as partial.
func TestOpenAIMidStreamError(t *testing.T) {
	for _, c := range []struct{ path, body, marker string }{
		{"/v1/chat/completions", oaiChatStream, `data: {"error":`},
		{"/v1/responses", oaiResponsesSSE, "event: response.failed"},
	} {
		t.Run(strings.TrimPrefix(c.path, "/v1/"), func(t *testing.T) {
			e := newOAIEnv(t)
			e.account(t, "oa-first", 10)
			other := e.account(t, "oa-second", 20)
			if err := e.Mock.SetScript("oa-first", mockupstream.Script{Events: 8, Fail: &mockupstream.Failure{Kind: mockupstream.FailError, After: 4}}); err != nil {
				t.Fatal(err)
			}
			resp := e.do(t, http.MethodPost, c.path, c.body, bearer(e.oai.Secret))
			got := readBody(t, resp)
			if resp.StatusCode != 200 || !bytes.Equal(got, e.tap.Exchanges()[0].Body()) || bytes.Count(got, []byte(c.marker)) != 1 ||
				bytes.Contains(got, []byte("event: error")) || bytes.Contains(got, []byte("[DONE]")) {
				t.Fatalf("status %d:\n%s", resp.StatusCode, got)
			}
			if e.Mock.Stats(other.Name).Requests != 0 {
				t.Error("a started stream failed over")
			}
			if rows := usageRows(t, e.Store, e.oai.User.ID, 1); !rows[0].Partial {
				t.Errorf("row %+v", rows[0])
			}
		})
	}
}

// TestOpenAIFirstEventErrorFailsOver: a stream whose first event is already a failure has
// sent the client nothing, so another account serves it, in both APIs.
func TestOpenAIFirstEventErrorFailsOver(t *testing.T) {
	for _, c := range []struct{ path, body string }{
		// include_usage: the stream needs no change, so the client gets the second's bytes.
		{"/v1/chat/completions", `{"model":"gpt-6-sol","stream":true,"stream_options":{"include_usage":true},"messages":[]}`},
		{"/v1/responses", oaiResponsesSSE},
	} {
		t.Run(strings.TrimPrefix(c.path, "/v1/"), func(t *testing.T) {
			e := newOAIEnv(t)
			e.account(t, "oa-first", 10)
			e.account(t, "oa-second", 20)
			if err := e.Mock.SetScript("oa-first", mockupstream.Script{Fail: &mockupstream.Failure{Kind: mockupstream.FailError, After: 0}}); err != nil {
				t.Fatal(err)
			}
			resp := e.do(t, http.MethodPost, c.path, c.body, bearer(e.oai.Secret))
			got := readBody(t, resp)
			ex := e.tap.Exchanges()
			if resp.StatusCode != 200 || len(ex) != 2 || !bytes.Equal(got, ex[1].Body()) {
				t.Fatalf("status %d after %d attempts:\n%s", resp.StatusCode, len(ex), got)
			}
		})
	}
}

// TestOpenAIStreamBrokeOff: when the upstream breaks off mid-stream the gateway ends the
// stream with exactly one error of its own, in the API's form.
func TestOpenAIStreamBrokeOff(t *testing.T) {
	for _, c := range []struct{ path, body, want string }{
		{"/v1/chat/completions", oaiChatStream, `data: {"error":{"message":"the upstream stream broke off","type":"server_error","param":null,"code":null}}` + "\n\n"},
		{"/v1/responses", oaiResponsesSSE, "event: error\n" + `data: {"type":"error","code":"server_error","message":"the upstream stream broke off","param":null}` + "\n\n"},
	} {
		t.Run(strings.TrimPrefix(c.path, "/v1/"), func(t *testing.T) {
			e := newOAIEnv(t)
			e.account(t, "oa-drop", 10)
			if err := e.Mock.SetScript("oa-drop", mockupstream.Script{Events: 8, Fail: &mockupstream.Failure{Kind: mockupstream.FailDrop, After: 4}}); err != nil {
				t.Fatal(err)
			}
			resp := e.do(t, http.MethodPost, c.path, c.body, bearer(e.oai.Secret))
			got := readBody(t, resp)
			if resp.StatusCode != 200 || !bytes.HasSuffix(got, []byte(c.want)) || bytes.Count(got, []byte("broke off")) != 1 {
				t.Fatalf("status %d:\n%s", resp.StatusCode, got)
			}
		})
	}
}

// TestOpenAIChatStreamUsage: a chat stream is billed from the usage chunk whether or not the
// client asked for it; a client that did not never sees the chunk.
func TestOpenAIChatStreamUsage(t *testing.T) {
	e := newOAIEnv(t)
	e.account(t, "oa-usage", 10)
	for i, c := range []struct {
		body  string
		asked bool
	}{
		{oaiChatStream, false},
		{`{"model":"gpt-6-sol","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, true},
	} {
		resp := e.do(t, http.MethodPost, "/v1/chat/completions", c.body, bearer(e.oai.Secret))
		got := readBody(t, resp)
		sent := e.tap.Exchanges()[i].Body()
		usageChunk := []byte(`"choices":[],"usage":{`)
		if !bytes.Contains(sent, usageChunk) {
			t.Fatalf("the gateway did not ask the upstream for usage:\n%s", sent)
		}
		if bytes.Contains(got, usageChunk) != c.asked || !bytes.HasSuffix(got, []byte("data: [DONE]\n\n")) {
			t.Fatalf("asked %v, got:\n%s", c.asked, got)
		}
		if c.asked && !bytes.Equal(got, sent) {
			t.Fatalf("a stream that needed no change was changed:\n%s\n%s", got, sent)
		}
		log := gatewaytest.MockLog(t, e.Mock, "oa-usage", i+1)[i]
		rows := usageRows(t, e.Store, e.oai.User.ID, i+1)
		var row *store.Usage
		for j := range rows {
			if rows[j].RequestID == resp.Header.Get(gateway.HeaderRequestID) {
				row = &rows[j]
			}
		}
		if row == nil || row.Partial || rowUsage(*row) != mockUsage(log.Usage) || row.Cost <= 0 {
			t.Fatalf("row %+v, mock usage %+v", row, log.Usage)
		}
	}
}

// TestOpenAIRoutes: the WebSocket probe, the shared /v1/models and the /v1/ 404s answer in
// the protocol of the key's group, or of the key's place when the group is unknown.
func TestOpenAIRoutes(t *testing.T) {
	e := newOAIEnv(t)
	gatewaytest.NewAccount(t, e.Deps, "oa-models", []int64{e.oai.Group.ID}, func(a *store.Account) {
		a.Platform, a.ModelMapping = store.PlatformOpenAI, map[string]string{"gpt-6-sol": "gpt-6-sol"}
	})
	anthropicShape := func(t *testing.T, body []byte) {
		t.Helper()
		var b struct{ Type string }
		if json.Unmarshal(body, &b) != nil || b.Type != "error" {
			t.Fatalf("not an Anthropic error: %s", body)
		}
	}
	t.Run("WebSocketIs426", func(t *testing.T) {
		for _, path := range []string{"/v1/responses", "/responses"} {
			resp := e.do(t, http.MethodGet, path, "", http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"},
				"Authorization": {"Bearer " + e.oai.Secret}})
			if _, _, _ = openAIError(t, readBody(t, resp)); resp.StatusCode != http.StatusUpgradeRequired {
				t.Fatalf("%s: %d", path, resp.StatusCode)
			}
		}
	})
	t.Run("ModelsByGroup", func(t *testing.T) {
		resp := e.do(t, http.MethodGet, "/v1/models", "", bearer(e.oai.Secret))
		var list struct {
			Object string
			Data   []struct{ ID, Object string }
		}
		if err := json.Unmarshal(readBody(t, resp), &list); err != nil || list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != "gpt-6-sol" {
			t.Fatalf("%d %+v %v", resp.StatusCode, list, err)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		for _, c := range []struct {
			name      string
			h         http.Header
			anthropic bool
		}{
			{"OpenAIGroup", bearer(e.oai.Secret), false},
			{"AnthropicGroupBearer", bearer(e.anth.Secret), true}, // Claude Code with an auth token
			{"UnknownBearer", bearer("sk-unknown"), false},
			{"UnknownXAPIKey", http.Header{"X-Api-Key": {"sk-unknown"}}, true},
		} {
			resp := e.do(t, http.MethodPost, "/v1/embeddings", "{}", c.h)
			body := readBody(t, resp)
			if resp.StatusCode != 404 {
				t.Fatalf("%s: %d", c.name, resp.StatusCode)
			}
			if c.anthropic {
				anthropicShape(t, body)
			} else {
				openAIError(t, body)
			}
		}
	})
	t.Run("RefusalsAreOpenAIShaped", func(t *testing.T) {
		for _, c := range []struct {
			name, method, path string
			h                  http.Header
			status             int
		}{
			{"NoKey", http.MethodPost, "/v1/chat/completions", nil, 401},
			{"BadKey", http.MethodPost, "/v1/responses", bearer("sk-bad"), 401},
			{"BadKeyModels", http.MethodGet, "/v1/models", bearer("sk-bad"), 401},
			{"AnthropicGroup", http.MethodPost, "/v1/responses", bearer(e.anth.Secret), 403},
			{"BadBody", http.MethodPost, "/v1/chat/completions", bearer(e.oai.Secret), 400},
		} {
			body := "{"
			if c.method == http.MethodGet {
				body = ""
			}
			resp := e.do(t, c.method, c.path, body, c.h)
			if openAIError(t, readBody(t, resp)); resp.StatusCode != c.status {
				t.Errorf("%s: %d", c.name, resp.StatusCode)
			}
		}
	})
}

// TestOpenAISticky: Codex's session header, or its prompt_cache_key, keeps a conversation on
// the account that served its first turn, though the ranking now prefers another.
func TestOpenAISticky(t *testing.T) {
	e := newOAIEnv(t)
	first := e.account(t, "oa-p", 10)
	e.account(t, "oa-q", 20)
	servedBy := func(h http.Header, body string) string {
		t.Helper()
		hh := bearer(e.oai.Secret)
		for k, v := range h {
			hh[k] = v
		}
		resp := e.do(t, http.MethodPost, "/v1/responses", body, hh)
		if b := readBody(t, resp); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		ex := e.tap.Exchanges()
		return strings.TrimPrefix(ex[len(ex)-1].UpstreamK, "Bearer ")
	}
	turn := func(n int, extra string) string {
		return `{"model":"gpt-6-sol","input":"turn ` + strconv.Itoa(n) + `"` + extra + `}`
	}
	header := http.Header{"Session-Id": {"codex-session-1"}}
	cacheKey := `,"prompt_cache_key":"codex-session-2"`
	if a, b := servedBy(header, turn(1, "")), servedBy(nil, turn(1, cacheKey)); a != "oa-p" || b != "oa-p" {
		t.Fatalf("the first turns went to %s and %s, not the preferred account", a, b)
	}
	first.Priority = 90
	if err := e.Store.UpdateAccount(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	if err := invalidate.Publish(context.Background(), e.Coord, invalidate.Account, first.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return servedBy(nil, turn(0, `,"instructions":"`+time.Now().String()+`"`)) == "oa-q" })
	for n := 2; n <= 4; n++ {
		if got := servedBy(header, turn(n, "")); got != "oa-p" {
			t.Fatalf("turn %d of the Session-Id conversation on %s", n, got)
		}
		if got := servedBy(nil, turn(n, cacheKey)); got != "oa-p" {
			t.Fatalf("turn %d of the prompt_cache_key conversation on %s", n, got)
		}
	}
}
