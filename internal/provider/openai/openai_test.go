package openai

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

func inbound(path string, h http.Header) provider.Inbound {
	if h == nil {
		h = http.Header{}
	}
	return provider.Inbound{Header: h, Path: path}
}

func TestParseRequest(t *testing.T) {
	p := New()
	cases := []struct {
		name, path, body string
		want             provider.Request
	}{
		{"ResponsesJSON", "/v1/responses", `{"model":"gpt-6-sol","input":"hi","store":false}`,
			provider.Request{Model: "gpt-6-sol", Variant: variantResponses}},
		{"ResponsesWithoutV1", "/responses", `{"model":"gpt-6-sol","input":"hi","stream":true}`,
			provider.Request{Model: "gpt-6-sol", Stream: true, Variant: variantResponses}},
		{"ChatJSON", "/v1/chat/completions", `{"model":"gpt-6-luna","messages":[{"role":"user","content":"hi"}]}`,
			provider.Request{Model: "gpt-6-luna", Variant: variantChat}},
		{"ChatStreamAskedForUsage", "/v1/chat/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]}`,
			provider.Request{Model: "m", Stream: true, Variant: variantChat}},
		{"ChatStreamWithoutUsage", "/v1/chat/completions", `{"model":"m","stream":true,"messages":[]}`,
			provider.Request{Model: "m", Stream: true, Variant: variantChatUsage}},
		{"ChatStreamUsageFalse", "/v1/chat/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[]}`,
			provider.Request{Model: "m", Stream: true, Variant: variantChatUsage}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := p.ParseRequest(provider.OpMessages, inbound(c.path, nil), []byte(c.body))
			got.Session = ""
			if err != nil || got != c.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
	for name, body := range map[string]string{
		"Empty":          ``,
		"NoModel":        `{"input":"x"}`,
		"ModelNotString": `{"model":5}`,
		"StreamNotBool":  `{"model":"m","stream":"yes"}`,
		"DuplicateModel": `{"model":"gpt-6-luna","model":"gpt-6-astra"}`,
	} {
		t.Run("Refuses"+name, func(t *testing.T) {
			if _, err := p.ParseRequest(provider.OpMessages, inbound("/v1/responses", nil), []byte(body)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestSession(t *testing.T) {
	p := New()
	session := func(path string, h http.Header, body string) string {
		t.Helper()
		req, err := p.ParseRequest(provider.OpMessages, inbound(path, h), []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return req.Session
	}
	turn1 := `{"model":"m","instructions":"be terse","input":[{"role":"user","content":"first"}]}`
	turn2 := `{"model":"m","instructions":"be terse","input":[{"role":"user","content":"first"},{"role":"assistant","content":"ok"},{"role":"user","content":"next"}]}`
	other := `{"model":"m","instructions":"be terse","input":[{"role":"user","content":"another"}]}`
	if a, b := session("/v1/responses", nil, turn1), session("/v1/responses", nil, turn2); a == "" || a != b {
		t.Errorf("two turns of one conversation: %q %q", a, b)
	}
	if session("/v1/responses", nil, turn1) == session("/v1/responses", nil, other) {
		t.Error("two conversations share a session")
	}
	// Codex: its session header wins over the body, in either spelling; its
	// prompt_cache_key (the session id) stands in when no header came.
	newer := http.Header{"Session-Id": {"019a-s1"}}
	older := http.Header{}
	older.Set("session_id", "019a-s1")
	if a, b := session("/v1/responses", newer, turn1), session("/v1/responses", older, other); a != b {
		t.Errorf("Session-Id and session_id differ: %q %q", a, b)
	}
	conv := http.Header{}
	conv.Set("conversation_id", "c-7")
	if session("/v1/responses", conv, turn1) == session("/v1/responses", nil, turn1) {
		t.Error("conversation_id ignored")
	}
	k1 := session("/v1/responses", nil, `{"model":"m","prompt_cache_key":"019a-s1","input":"a"}`)
	k2 := session("/v1/responses", nil, `{"model":"m","prompt_cache_key":"019a-s1","input":"b"}`)
	if k1 != k2 || k1 == session("/v1/responses", nil, `{"model":"m","input":"a"}`) {
		t.Errorf("prompt_cache_key: %q %q", k1, k2)
	}
	c1 := session("/v1/chat/completions", nil, `{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}]}`)
	c2 := session("/v1/chat/completions", nil, `{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"u"},{"role":"assistant","content":"a"}]}`)
	if c1 == "" || c1 != c2 || len(c1) != 32 {
		t.Errorf("chat sessions %q %q", c1, c2)
	}
}

// TestAnswerSession: a request continuing a response (previous_response_id) carries the
// session its answer reported, JSON or streamed, whatever else the request names; a response
// the upstream does not keep (store false) and a chat completion report none.
func TestAnswerSession(t *testing.T) {
	p := New()
	req, err := p.ParseRequest(provider.OpMessages, inbound("/v1/responses", http.Header{"Session-Id": {"s-1"}}),
		[]byte(`{"model":"m","input":"next","prompt_cache_key":"k","previous_response_id":"resp_1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !req.Continues || req.Session == "" {
		t.Fatalf("continuing request: %+v", req)
	}
	responses := provider.Request{Variant: variantResponses}
	if got := p.AnswerSession(responses, []byte(`{"id":"resp_1","object":"response","store":true}`)); got != req.Session {
		t.Errorf("JSON answer's session %q, want the continuing request's %q", got, req.Session)
	}
	m := p.NewRequestMeter(responses).(provider.SessionMeter)
	m.Event([]byte("response.completed"), []byte(`{"type":"response.completed","response":{"id":"resp_1","usage":{"input_tokens":1}}}`))
	if got := m.AnswerSession(); got != req.Session {
		t.Errorf("stream's session %q, want %q", got, req.Session)
	}
	for name, c := range map[string]struct {
		req  provider.Request
		body string
	}{
		"store false": {responses, `{"id":"resp_2","object":"response","store":false}`},
		"no id":       {responses, `{"object":"response"}`},
		"chat":        {provider.Request{Variant: variantChat}, `{"id":"chatcmpl-1","object":"chat.completion"}`},
	} {
		if got := p.AnswerSession(c.req, []byte(c.body)); got != "" {
			t.Errorf("%s: session %q, want none", name, got)
		}
	}
}

func account() *store.Account {
	return &store.Account{ID: 7, Platform: store.PlatformOpenAI, Type: store.AccountTypeAPIKey,
		BaseURL: "https://up.example/v1/", Credentials: store.Credentials{APIKey: "sk-account",
			Extra: map[string]string{ExtraOrganization: "org-acct", ExtraProject: "proj_acct"}}}
}

func upstream(t *testing.T, op provider.Operation, path string, tg provider.Target, h http.Header, body string) (*http.Request, string) {
	t.Helper()
	if tg.Account == nil {
		tg.Account = account()
	}
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	req, err := New().NewUpstreamRequest(context.Background(), op, tg, inbound(path, h), b)
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	if req.Body != nil {
		raw, _ := io.ReadAll(req.Body)
		got = string(raw)
	}
	return req, got
}

func TestUpstreamRequest(t *testing.T) {
	// The gateway has removed the client's key before; the client's own organization and
	// anything unknown must not pass either.
	h := http.Header{"Openai-Organization": {"org-client"}, "Cookie": {"c=1"}, "Session-Id": {"s1"},
		"X-Stainless-Lang": {"go"}, "Originator": {"codex_exec"}, "Accept": {"text/event-stream"},
		"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}
	body := `{"model":"gpt-6-sol","input":"hi","previous_response_id":"resp_1","store":true}`
	req, got := upstream(t, provider.OpMessages, "/responses", provider.Target{}, h, body)
	if req.Method != http.MethodPost || req.URL.String() != "https://up.example/v1/responses" {
		t.Fatalf("%s %s", req.Method, req.URL)
	}
	if got != body {
		t.Errorf("body changed without a mapping: %s", got)
	}
	want := map[string]string{"Authorization": "Bearer sk-account", "Openai-Organization": "org-acct",
		"Openai-Project": "proj_acct", "Session-Id": "s1", "X-Stainless-Lang": "go", "Originator": "codex_exec",
		"Accept": "text/event-stream", "Content-Type": "application/json", "Cookie": "", "Upgrade": "", "Connection": ""}
	for k, v := range want {
		if req.Header.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, req.Header.Get(k), v)
		}
	}

	acct := account()
	acct.BaseURL, acct.Credentials.Extra = "", nil
	req, _ = upstream(t, provider.OpMessages, "/v1/chat/completions", provider.Target{Account: acct}, nil, `{"model":"m","messages":[]}`)
	if req.URL.String() != DefaultBaseURL+"/v1/chat/completions" || req.Header.Get("Openai-Organization") != "" {
		t.Errorf("%s org %q", req.URL, req.Header.Get("Openai-Organization"))
	}
	// The confirming call of a refused account: a GET of the model list, no body.
	req, got = upstream(t, provider.OpModels, "", provider.Target{}, nil, "")
	if req.Method != http.MethodGet || req.URL.Path != "/v1/models" || got != "" || req.Header.Get("Authorization") != "Bearer sk-account" {
		t.Errorf("models: %s %s %q", req.Method, req.URL, got)
	}
}

func TestUpstreamRequestPatchesOnlyWhatItMust(t *testing.T) {
	mapped := provider.Target{Model: "gpt-6-luna", Rewrite: true}
	cases := []struct {
		name, path string
		tg         provider.Target
		body, want string
	}{
		{"MappedModel", "/v1/responses", mapped,
			`{"mod\u0065l" : "alias", "input":"x"}`, `{"mod\u0065l" : "gpt-6-luna", "input":"x"}`},
		{"ChatJSONUntouched", "/v1/chat/completions", provider.Target{},
			`{"model":"m","messages":[]}`, `{"model":"m","messages":[]}`},
		{"ChatStreamGetsUsage", "/v1/chat/completions", provider.Target{},
			`{"model":"m","stream":true,"messages":[]} `, `{"model":"m","stream":true,"messages":[],"stream_options":{"include_usage":true}} `},
		{"ChatStreamUsageFalse", "/v1/chat/completions", mapped,
			`{"model":"a","stream":true,"stream_options":{"include_obfuscation":false,"include_usage":false}}`,
			`{"model":"gpt-6-luna","stream":true,"stream_options":{"include_obfuscation":false,"include_usage":true}}`},
		{"ChatStreamOptionsNull", "/v1/chat/completions", provider.Target{},
			`{"model":"m","stream":true,"stream_options":null}`, `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`},
		{"ChatStreamAskedAlready", "/v1/chat/completions", provider.Target{},
			`{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`},
		{"ResponsesStreamUntouched", "/v1/responses", provider.Target{},
			`{"model":"m","stream":true}`, `{"model":"m","stream":true}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, got := upstream(t, provider.OpMessages, c.path, c.tg, nil, c.body)
			if got != c.want {
				t.Fatalf("got  %s\nwant %s", got, c.want)
			}
			if !json.Valid([]byte(got)) {
				t.Fatal("not JSON")
			}
		})
	}
}

func TestUpstreamRequestWithoutCredentials(t *testing.T) {
	for name, acct := range map[string]*store.Account{
		"NoKey": {ID: 1, Type: store.AccountTypeAPIKey},
		"OAuth": {ID: 2, Type: store.AccountTypeOAuth, Credentials: store.Credentials{AccessToken: "t"}},
	} {
		_, err := New().NewUpstreamRequest(context.Background(), provider.OpMessages, provider.Target{Account: acct},
			inbound("/v1/responses", nil), []byte(`{"model":"m"}`))
		if err == nil || !strings.Contains(err.Error(), provider.ErrNoCredentials.Error()) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestUsage: OpenAI's input counts include the cached tokens (and cache writes), its output
// counts the reasoning tokens; the gateway's Input excludes cache reads and writes.
func TestUsage(t *testing.T) {
	p := New()
	cases := []struct {
		name, body string
		want       provider.Usage
	}{
		{"Responses", `{"object":"response","usage":{"input_tokens":1200,"input_tokens_details":{"cached_tokens":1000},"output_tokens":300,"output_tokens_details":{"reasoning_tokens":250},"total_tokens":1500}}`,
			provider.Usage{Input: 200, CacheRead: 1000, Output: 300}},
		{"ResponsesCacheWrite", `{"usage":{"input_tokens":5000,"input_tokens_details":{"cached_tokens":1000,"cache_write_tokens":3000},"output_tokens":7}}`,
			provider.Usage{Input: 1000, CacheRead: 1000, CacheCreation5m: 3000, Output: 7}},
		{"Chat", `{"object":"chat.completion","usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":5}}}`,
			provider.Usage{Input: 5, CacheRead: 4, Output: 12}},
		{"NoDetails", `{"usage":{"prompt_tokens":9,"completion_tokens":1}}`, provider.Usage{Input: 9, Output: 1}},
		{"BrokenDetails", `{"usage":{"input_tokens":3,"input_tokens_details":{"cached_tokens":10},"output_tokens":1}}`,
			provider.Usage{CacheRead: 10, Output: 1}},
		{"NoUsage", `{"object":"response","usage":null}`, provider.Usage{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := p.JSONUsage([]byte(c.body)); got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

type ev struct{ name, data string }

func feed(m provider.Meter, events []ev) (errs, hidden []int) {
	for i, e := range events {
		if m.Event([]byte(e.name), []byte(e.data)) {
			errs = append(errs, i)
		}
		if f, ok := m.(provider.Filter); ok && f.Hidden() {
			hidden = append(hidden, i)
		}
	}
	return errs, hidden
}

var chatChunks = []ev{
	{"", `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"usage":null}`},
	{"", `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"the \"error\": and \"usage\":{ words"}}],"usage":null}`},
	{"", `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}`},
	{"", `{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":2}}}`},
	{"", `[DONE]`},
}

func TestChatMeter(t *testing.T) {
	p := New()
	want := provider.Usage{Input: 7, CacheRead: 2, Output: 12}
	for _, c := range []struct {
		variant string
		hidden  []int
	}{{variantChat, nil}, {variantChatUsage, []int{3}}} {
		m := p.NewRequestMeter(provider.Request{Variant: c.variant, Stream: true})
		errs, hidden := feed(m, chatChunks)
		if len(errs) != 0 || m.Usage() != want || !m.Complete() || len(hidden) != len(c.hidden) || len(hidden) > 0 && hidden[0] != 3 {
			t.Errorf("%s: errors %v hidden %v usage %+v complete %v", c.variant, errs, hidden, m.Usage(), m.Complete())
		}
	}
	m := p.NewRequestMeter(provider.Request{Variant: variantChatUsage})
	errs, _ := feed(m, []ev{chatChunks[0], {"", `{"error":{"message":"boom","type":"server_error","param":null,"code":null}}`}})
	if len(errs) != 1 || errs[0] != 1 || m.Complete() {
		t.Errorf("error chunk: %v complete %v", errs, m.Complete())
	}
}

func TestResponsesMeter(t *testing.T) {
	m := New().NewRequestMeter(provider.Request{Variant: variantResponses})
	errs, hidden := feed(m, []ev{
		{"response.created", `{"type":"response.created","sequence_number":0,"response":{"id":"r","status":"in_progress","usage":null}}`},
		{"response.output_text.delta", `{"type":"response.output_text.delta","sequence_number":1,"delta":"hi"}`},
		{"", `{"type":"response.completed","sequence_number":2,"response":{"id":"r","status":"completed","usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":3},"total_tokens":15}}}`},
	})
	if len(errs) != 0 || len(hidden) != 0 || m.Usage() != (provider.Usage{Input: 6, CacheRead: 4, Output: 5}) || !m.Complete() {
		t.Errorf("errors %v hidden %v usage %+v complete %v", errs, hidden, m.Usage(), m.Complete())
	}
	for _, e := range []ev{
		{"error", `{"type":"error","code":"server_error","message":"x","param":null,"sequence_number":3}`},
		{"response.failed", `{"type":"response.failed","sequence_number":3,"response":{"status":"failed","error":{"code":"server_error","message":"x"},"usage":null}}`},
	} {
		m := New().NewRequestMeter(provider.Request{Variant: variantResponses})
		if errs, _ := feed(m, []ev{e}); len(errs) != 1 || m.Complete() {
			t.Errorf("%s: %v", e.name, errs)
		}
	}
}

func TestClassify(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	rate := http.Header{"X-Ratelimit-Remaining-Requests": {"0"}, "X-Ratelimit-Reset-Requests": {"6m0s"},
		"X-Ratelimit-Remaining-Tokens": {"1000"}, "X-Ratelimit-Reset-Tokens": {"20ms"}, "Retry-After": {"2"}}
	cases := []struct {
		name    string
		status  int
		h       http.Header
		body    string
		verdict provider.Verdict
		kind    provider.ErrorKind
		mark    provider.Mark
	}{
		{"InvalidKey", 401, nil, `{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
			provider.Failover, provider.KindAuthentication, provider.Mark{Kind: provider.MarkVerify}},
		{"Region", 403, nil, `{"error":{"message":"Country, region, or territory not supported","type":"request_forbidden","param":null,"code":"unsupported_country_region_territory"}}`,
			provider.Failover, provider.KindPermission, provider.Mark{Kind: provider.MarkVerify}},
		{"RateLimited", 429, rate, `{"error":{"message":"Rate limit reached for requests. Please try again in 2s.","type":"requests","param":null,"code":"rate_limit_exceeded"}}`,
			provider.Failover, provider.KindRateLimit, provider.Mark{Kind: provider.MarkRateLimited, Until: now.Add(6 * time.Minute)}},
		{"OutOfCredit", 429, rate, `{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`,
			provider.Failover, provider.KindBilling, provider.Mark{Kind: provider.MarkError}},
		{"ServerError", 500, nil, `{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}`,
			provider.Failover, provider.KindAPI, provider.Mark{}},
		{"Overloaded", 503, nil, `{"error":{"message":"The engine is currently overloaded","type":"server_error","param":null,"code":null}}`,
			provider.Failover, provider.KindOverloaded, provider.Mark{}},
		{"BadRequest", 400, nil, `{"error":{"message":"Unsupported parameter: 'x'.","type":"invalid_request_error","param":"x","code":"unsupported_parameter"}}`,
			provider.PassThrough, provider.KindInvalidRequest, provider.Mark{}},
		{"UnknownModel", 404, nil, `{"error":{"message":"The model does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}`,
			provider.PassThrough, provider.KindNotFound, provider.Mark{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := c.h
			if h == nil {
				h = http.Header{}
			}
			f := New().Classify(c.status, h, []byte(c.body), now)
			if f.Verdict != c.verdict || f.Kind != c.kind || f.Mark != c.mark || f.Status != c.status || f.Message == "" {
				t.Fatalf("got %+v", f)
			}
		})
	}
}

func TestRateLimitReset(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		h    http.Header
		want time.Time
	}{
		{"LatestExhausted", http.Header{"X-Ratelimit-Remaining-Requests": {"0"}, "X-Ratelimit-Reset-Requests": {"1s"},
			"X-Ratelimit-Remaining-Tokens": {"0"}, "X-Ratelimit-Reset-Tokens": {"1m30.5s"}, "Retry-After": {"9"}}, now.Add(90500 * time.Millisecond)},
		{"ExhaustedOverRetryAfter", http.Header{"X-Ratelimit-Remaining-Tokens": {"0"}, "X-Ratelimit-Reset-Tokens": {"20ms"}, "Retry-After": {"9"}}, now.Add(20 * time.Millisecond)},
		{"RetryAfterWhenNoneExhausted", http.Header{"X-Ratelimit-Remaining-Tokens": {"5"}, "X-Ratelimit-Reset-Tokens": {"20ms"}, "Retry-After": {"9"}}, now.Add(9 * time.Second)},
		{"AnyResetLast", http.Header{"X-Ratelimit-Remaining-Tokens": {"5"}, "X-Ratelimit-Reset-Tokens": {"6m0s"}}, now.Add(6 * time.Minute)},
		{"Nothing", http.Header{"X-Ratelimit-Reset-Tokens": {"soon"}}, time.Time{}},
	}
	for _, c := range cases {
		if got := RateLimitReset(c.h, now); !got.Equal(c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestClassifyEvent(t *testing.T) {
	cases := []struct {
		name, data string
		verdict    provider.Verdict
		kind       provider.ErrorKind
		mark       provider.MarkKind
	}{
		{"ChatServerError", `{"error":{"message":"x","type":"server_error","param":null,"code":null}}`, provider.Failover, provider.KindAPI, provider.MarkNone},
		{"ChatInvalid", `{"error":{"message":"x","type":"invalid_request_error","param":null,"code":null}}`, provider.PassThrough, provider.KindInvalidRequest, provider.MarkNone},
		{"ResponsesError", `{"type":"error","code":"rate_limit_exceeded","message":"x","param":null,"sequence_number":4}`, provider.Failover, provider.KindRateLimit, provider.MarkRateLimited},
		{"ResponsesFailedQuota", `{"type":"response.failed","response":{"error":{"code":"insufficient_quota","message":"x"}}}`, provider.Failover, provider.KindBilling, provider.MarkError},
		{"ResponsesFailedContext", `{"type":"response.failed","response":{"error":{"code":"context_length_exceeded","message":"x"}}}`, provider.PassThrough, provider.KindInvalidRequest, provider.MarkNone},
		{"ResponsesFailedServer", `{"type":"response.failed","response":{"error":{"code":"server_error","message":"x"}}}`, provider.Failover, provider.KindAPI, provider.MarkNone},
	}
	for _, c := range cases {
		f := New().ClassifyEvent([]byte(c.data), time.Now())
		if f.Verdict != c.verdict || f.Kind != c.kind || f.Mark.Kind != c.mark {
			t.Errorf("%s: %+v", c.name, f)
		}
	}
}

func TestErrors(t *testing.T) {
	p := New()
	rec := httptest.NewRecorder()
	p.WriteError(rec, provider.KindOverloaded, 0, "upstream overloaded", "rid")
	var body struct {
		Error struct {
			Message, Type string
			Param, Code   *string
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 503 || body.Error.Message != "upstream overloaded" || body.Error.Type != "server_error" ||
		body.Error.Param != nil || body.Error.Code == nil || *body.Error.Code != "overloaded" || !strings.Contains(rec.Body.String(), `"param":null`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	chat := string(p.RequestErrorEvent(provider.Request{Variant: variantChatUsage}, provider.KindTimeout, "silent", "rid"))
	if chat != `data: {"error":{"message":"silent","type":"server_error","param":null,"code":"timeout"}}`+"\n\n" {
		t.Errorf("chat error event %q", chat)
	}
	resp := string(p.RequestErrorEvent(provider.Request{Variant: variantResponses}, provider.KindAPI, "broke off", "rid"))
	if resp != `event: error`+"\n"+`data: {"type":"error","code":"server_error","message":"broke off","param":null}`+"\n\n" {
		t.Errorf("responses error event %q", resp)
	}
}
