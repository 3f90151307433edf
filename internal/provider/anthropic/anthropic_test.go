package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

func TestParseRequest(t *testing.T) {
	p := New()
	t.Run("ModelAndStream", func(t *testing.T) {
		req, err := p.ParseRequest(provider.OpMessages, provider.Inbound{}, []byte(`{"model":"claude-opus-5-5","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}`))
		if err != nil || req.Model != "claude-opus-5-5" || !req.Stream {
			t.Fatalf("got %+v, %v", req, err)
		}
	})
	for name, body := range map[string]string{
		"Empty":          ``,
		"NotJSON":        `{"model":`,
		"NotObject":      `["model"]`,
		"NoModel":        `{"max_tokens":5}`,
		"ModelNotString": `{"model":5}`,
		"StreamNotBool":  `{"model":"m","stream":"yes"}`,
		// Two copies of a key: the gateway would bill one and a last-key-wins upstream
		// serve the other.
		"DuplicateModel":        `{"model":"claude-haiku-5-5","max_tokens":5,"model":"claude-opus-5-5"}`,
		"DuplicateEscapedModel": `{"model":"claude-haiku-5-5","mod\u0065l":"claude-opus-5-5"}`,
		"DuplicateStream":       `{"model":"m","stream":false,"stream":true}`,
		"DuplicateMaxTokens":    `{"model":"m","max_tokens":1,"max_tokens":100000}`,
		"LongModel":             `{"model":"` + strings.Repeat("m", provider.MaxModelLen+1) + `"}`,
		"ControlInModel":        `{"model":"claude\u0000x"}`,
		"TooDeep":               `{"model":"m","x":` + strings.Repeat("[", provider.MaxJSONDepth) + strings.Repeat("]", provider.MaxJSONDepth) + `}`,
	} {
		t.Run("Rejects"+name, func(t *testing.T) {
			if _, err := p.ParseRequest(provider.OpMessages, provider.Inbound{}, []byte(body)); err == nil {
				t.Fatalf("body %q accepted", body)
			}
		})
	}
	t.Run("EscapedModelKey", func(t *testing.T) {
		req, err := p.ParseRequest(provider.OpMessages, provider.Inbound{}, []byte(`{"mod\u0065l":"claude-\u006fpus-5-5"}`))
		if err != nil || req.Model != "claude-opus-5-5" {
			t.Fatalf("got %+v, %v", req, err)
		}
	})
	t.Run("LongestModelAndDeepestBody", func(t *testing.T) {
		depth := provider.MaxJSONDepth - 1 // the body object itself is one level
		model := strings.Repeat("m", provider.MaxModelLen)
		body := `{"model":"` + model + `","x":` + strings.Repeat("[", depth) + `"[[["` + strings.Repeat("]", depth) + `}`
		if req, err := p.ParseRequest(provider.OpMessages, provider.Inbound{}, []byte(body)); err != nil || req.Model != model {
			t.Fatalf("got %+v, %v", req, err)
		}
	})
	t.Run("CountTokensIgnoresStream", func(t *testing.T) {
		if _, err := p.ParseRequest(provider.OpCountTokens, provider.Inbound{}, []byte(`{"model":"m","stream":"x"}`)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestParseRequestSurvivesDeepNesting: 32 MiB of "[" (well under the body limit) made
// gjson's recursive validator overflow the goroutine stack, a fatal error that ends the
// whole process. It is now refused as a client error.
func TestParseRequestSurvivesDeepNesting(t *testing.T) {
	body := append([]byte(`{"model":"m","x":`), bytes.Repeat([]byte("["), 32<<20)...)
	if _, err := New().ParseRequest(provider.OpMessages, provider.Inbound{}, body); err == nil || !strings.Contains(err.Error(), "nests deeper") {
		t.Fatalf("got %v", err)
	}
}

func TestSession(t *testing.T) {
	p := New()
	session := func(h http.Header, body string) string {
		t.Helper()
		req, err := p.ParseRequest(provider.OpMessages, provider.Inbound{Header: h}, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return req.Session
	}
	const sid = "232ebeca-eecb-4308-b9ff-a3fe2280574c"
	header := http.Header{"X-Claude-Code-Session-Id": {sid}}
	jsonUID := `{"model":"m","metadata":{"user_id":"{\"device_id\":\"d1\",\"account_uuid\":\"\",\"session_id\":\"` + sid + `\"}"},"messages":[{"role":"user","content":"a"}]}`
	legacyUID := `{"model":"m","metadata":{"user_id":"user_abc_account_x_session_` + sid + `"},"messages":[{"role":"user","content":"b"}]}`

	fromHeader := session(header, `{"model":"m","messages":[{"role":"user","content":"c"}]}`)
	if fromHeader == "" {
		t.Fatal("no session from the header")
	}
	if got := session(http.Header{}, jsonUID); got != fromHeader {
		t.Errorf("metadata JSON user_id: %q, want the header's %q", got, fromHeader)
	}
	if got := session(http.Header{}, legacyUID); got != fromHeader {
		t.Errorf("legacy user_id: %q, want the header's %q", got, fromHeader)
	}

	turn1 := `{"model":"m","system":"be brief","messages":[{"role":"user","content":"first"}]}`
	turn2 := `{"model":"m","system":"be brief","messages":[{"role":"user","content":"first"},{"role":"assistant","content":"ok"},{"role":"user","content":"more"}]}`
	other := `{"model":"m","system":"be brief","messages":[{"role":"user","content":"another chat"}]}`
	if a, b := session(http.Header{}, turn1), session(http.Header{}, turn2); a == "" || a != b {
		t.Errorf("turns of one conversation: %q vs %q, want equal", a, b)
	}
	if a, b := session(http.Header{}, turn1), session(http.Header{}, other); a == b {
		t.Errorf("different conversations share session %q", a)
	}
	if got := session(http.Header{}, `{"model":"m"}`); got != "" {
		t.Errorf("nothing to stick on gave %q", got)
	}
}

func apiKeyAccount() *store.Account {
	return &store.Account{ID: 7, Type: store.AccountTypeAPIKey, BaseURL: "http://127.0.0.1:9/base/",
		Credentials: store.Credentials{APIKey: "sk-ant-upstream"}}
}

func TestUpstreamRequestAPIKey(t *testing.T) {
	p := New()
	body := []byte("{\"model\" : \"claude-opus-5-5\",\n \"x\":\"\\u00e9\\u2028\", \"max_tokens\":1e3}")
	client := http.Header{
		"Authorization":           {"Bearer fk-client-secret"},
		"X-Api-Key":               {"fk-client-secret"},
		"Cookie":                  {"session=1"},
		"X-Forwarded-For":         {"10.0.0.1"},
		"Accept-Encoding":         {"gzip"},
		"Anthropic-Beta":          {"claude-code-20250219,interleaved-thinking-2025-05-14"},
		"X-Stainless-Lang":        {"go"},
		"X-Stainless-Retry-Count": {"0"},
		"User-Agent":              {"claude-cli/2.1.332 (external, sdk-cli)"},
	}
	req, err := p.NewUpstreamRequest(context.Background(), provider.OpMessages,
		provider.Target{Account: apiKeyAccount(), Model: "claude-opus-5-5"}, provider.Inbound{Header: client, RawQuery: "beta=true"}, body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := req.URL.String(), "http://127.0.0.1:9/base/v1/messages?beta=true"; got != want {
		t.Errorf("url = %s, want %s", got, want)
	}
	if req.Method != http.MethodPost {
		t.Errorf("method = %s", req.Method)
	}
	want := map[string]string{
		"X-Api-Key":               "sk-ant-upstream",
		"Authorization":           "",
		"Cookie":                  "",
		"X-Forwarded-For":         "",
		"Accept-Encoding":         "",
		"Anthropic-Version":       Version,
		"Anthropic-Beta":          "claude-code-20250219,interleaved-thinking-2025-05-14",
		"X-Stainless-Lang":        "go",
		"X-Stainless-Retry-Count": "0",
		"Content-Type":            "application/json",
		"User-Agent":              "claude-cli/2.1.332 (external, sdk-cli)",
	}
	for name, v := range want {
		if got := req.Header.Get(name); got != v {
			t.Errorf("header %s = %q, want %q", name, got, v)
		}
	}
	got, _ := io.ReadAll(req.Body)
	if !bytes.Equal(got, body) {
		t.Errorf("body changed without a mapping:\n%s\n%s", got, body)
	}
}

func TestUpstreamRequestRewritesOnlyModel(t *testing.T) {
	p := New()
	body := []byte("{\"model\" : \"claude-opus-5-5\",\n \"x\":\"\\u00e9\\u2028\", \"max_tokens\":1e3, \"metadata\":{\"model\":\"keep\"}}")
	req, err := p.NewUpstreamRequest(context.Background(), provider.OpMessages,
		provider.Target{Account: apiKeyAccount(), Model: "claude-sonnet-5-5", Rewrite: true}, provider.Inbound{}, body)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(req.Body)
	want := bytes.Replace(body, []byte(`"claude-opus-5-5"`), []byte(`"claude-sonnet-5-5"`), 1)
	if !bytes.Equal(got, want) {
		t.Errorf("rewrite touched more than the model:\n got %s\nwant %s", got, want)
	}
	if req.ContentLength != int64(len(want)) {
		t.Errorf("content length %d, want %d", req.ContentLength, len(want))
	}
}

// TestUpstreamRequestRewritesEscapedModelKey: the rewrite replaces the member the parser
// read, however its key is spelt, and never adds a second "model" member.
func TestUpstreamRequestRewritesEscapedModelKey(t *testing.T) {
	p := New()
	body := []byte(`{"mod\u0065l":"claude-opus-5-5","max_tokens":5}`)
	req, err := p.NewUpstreamRequest(context.Background(), provider.OpMessages,
		provider.Target{Account: apiKeyAccount(), Model: "claude-haiku-5-5", Rewrite: true}, provider.Inbound{}, body)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(req.Body)
	if want := `{"mod\u0065l":"claude-haiku-5-5","max_tokens":5}`; string(got) != want {
		t.Fatalf("forwarded %s, want %s", got, want)
	}
	if back, err := p.ParseRequest(provider.OpMessages, provider.Inbound{}, got); err != nil || back.Model != "claude-haiku-5-5" {
		t.Fatalf("forwarded body reads as %+v, %v", back, err)
	}
}

func TestUpstreamRequestOAuth(t *testing.T) {
	p := New()
	acct := &store.Account{ID: 8, Type: store.AccountTypeOAuth, Credentials: store.Credentials{AccessToken: "sk-ant-oat01-tok"}}
	client := http.Header{"X-Api-Key": {"fk-client"}, "Anthropic-Beta": {"interleaved-thinking-2025-05-14"}, "User-Agent": {"my-sdk/1.0"}}
	req, err := p.NewUpstreamRequest(context.Background(), provider.OpCountTokens, provider.Target{Account: acct, Model: "m"}, provider.Inbound{Header: client}, []byte(`{"model":"m"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := req.URL.String(), DefaultBaseURL+"/v1/messages/count_tokens"; got != want {
		t.Errorf("url = %s, want %s", got, want)
	}
	for name, v := range map[string]string{
		"Authorization":  "Bearer sk-ant-oat01-tok",
		"X-Api-Key":      "",
		"Anthropic-Beta": "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14",
		"User-Agent":     oauthUserAgent,
		"X-App":          "cli",
	} {
		if got := req.Header.Get(name); got != v {
			t.Errorf("header %s = %q, want %q", name, got, v)
		}
	}
}

func TestUpstreamRequestModelsIsGET(t *testing.T) {
	req, err := New().NewUpstreamRequest(context.Background(), provider.OpModels, provider.Target{Account: apiKeyAccount()}, provider.Inbound{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != http.MethodGet || req.URL.Path != "/base/v1/models" || req.Body != nil {
		t.Fatalf("got %s %s", req.Method, req.URL)
	}
}

func TestUpstreamRequestWithoutCredentials(t *testing.T) {
	for _, acct := range []*store.Account{
		{ID: 1, Type: store.AccountTypeAPIKey},
		{ID: 2, Type: store.AccountTypeOAuth},
		{ID: 3, Type: "weird", Credentials: store.Credentials{APIKey: "k"}},
	} {
		if _, err := New().NewUpstreamRequest(context.Background(), provider.OpMessages, provider.Target{Account: acct}, provider.Inbound{}, []byte(`{}`)); err == nil {
			t.Errorf("account %d (%s) built a request", acct.ID, acct.Type)
		}
	}
}

func TestOAuthBetas(t *testing.T) {
	for client, want := range map[string]string{
		"":                                      "claude-code-20250219,oauth-2025-04-20",
		"claude-code-20250219,x":                "claude-code-20250219,oauth-2025-04-20,x",
		"x, claude-code-20250219":               "x,claude-code-20250219,oauth-2025-04-20",
		"oauth-2025-04-20,claude-code-20250219": "oauth-2025-04-20,claude-code-20250219",
		"x,oauth-2025-04-20":                    "claude-code-20250219,x,oauth-2025-04-20",
	} {
		if got := oauthBetas(client); got != want {
			t.Errorf("oauthBetas(%q) = %q, want %q", client, got, want)
		}
	}
}

const sampleStream = `event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-opus-5-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":30,"cache_read_input_tokens":7,"cache_creation":{"ephemeral_5m_input_tokens":12,"ephemeral_1h_input_tokens":18},"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello \"usage\":{\"output_tokens\":999}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":3}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5,"input_tokens":null}}

event: message_stop
data: {"type":"message_stop"}

`

func meterStream(t testing.TB, stream string) provider.Meter {
	t.Helper()
	m := New().NewMeter()
	er := provider.NewEventReader(strings.NewReader(stream))
	defer er.Release()
	for {
		ev, err := er.Next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatal(err)
		}
		m.Event(ev.Name, ev.Data)
	}
}

func TestMeter(t *testing.T) {
	m := meterStream(t, sampleStream)
	want := provider.Usage{Input: 10, Output: 5, CacheCreation5m: 12, CacheCreation1h: 18, CacheRead: 7}
	if m.Usage() != want || !m.Complete() {
		t.Fatalf("usage %+v complete %v, want %+v complete", m.Usage(), m.Complete(), want)
	}

	t.Run("DeltaOverridesInputAndCache", func(t *testing.T) {
		m := meterStream(t, "event: message_start\ndata: {\"message\":{\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n\n"+
			"event: message_delta\ndata: {\"usage\":{\"input_tokens\":40,\"cache_creation_input_tokens\":9,\"cache_read_input_tokens\":2,\"output_tokens\":8}}\n\n")
		want := provider.Usage{Input: 40, Output: 8, CacheCreation5m: 9, CacheRead: 2}
		if m.Usage() != want || m.Complete() {
			t.Fatalf("usage %+v complete %v, want %+v incomplete", m.Usage(), m.Complete(), want)
		}
	})
	t.Run("EventsWithoutNames", func(t *testing.T) {
		m := meterStream(t, "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"+
			"data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":4}}\n\ndata: {\"type\":\"message_stop\"}\n\n")
		if want := (provider.Usage{Input: 3, Output: 4}); m.Usage() != want || !m.Complete() {
			t.Fatalf("usage %+v, want %+v", m.Usage(), want)
		}
	})
	t.Run("ErrorEvent", func(t *testing.T) {
		if !New().NewMeter().Event([]byte("error"), []byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)) {
			t.Fatal("error event not reported")
		}
	})
}

func TestJSONUsage(t *testing.T) {
	body := []byte(`{"id":"msg_01","type":"message","role":"assistant","model":"claude-opus-5-5",
 "content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,
 "usage":{"input_tokens":12,"cache_creation_input_tokens":25,"cache_read_input_tokens":4,
          "cache_creation":{"ephemeral_5m_input_tokens":20,"ephemeral_1h_input_tokens":0},
          "output_tokens":6,"service_tier":"standard"}}`)
	// 25 created but the split names 20: the 5 unaccounted tokens bill as 5m writes.
	want := provider.Usage{Input: 12, Output: 6, CacheCreation5m: 25, CacheRead: 4}
	if got := New().JSONUsage(body); got != want {
		t.Fatalf("usage %+v, want %+v", got, want)
	}
}

func TestClassify(t *testing.T) {
	p := New()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	body := func(typ, msg string) []byte {
		return []byte(`{"type":"error","error":{"type":"` + typ + `","message":"` + msg + `"}}`)
	}
	cases := []struct {
		status  int
		h       http.Header
		body    []byte
		verdict provider.Verdict
		mark    provider.MarkKind
		until   time.Time
		kind    provider.ErrorKind
	}{
		{400, nil, body("invalid_request_error", "bad"), provider.PassThrough, provider.MarkNone, time.Time{}, provider.KindInvalidRequest},
		{404, nil, body("not_found_error", "no"), provider.PassThrough, provider.MarkNone, time.Time{}, provider.KindNotFound},
		{401, nil, body("authentication_error", "invalid x-api-key"), provider.Failover, provider.MarkVerify, time.Time{}, provider.KindAuthentication},
		{403, nil, []byte("<html>forbidden</html>"), provider.Failover, provider.MarkVerify, time.Time{}, provider.KindPermission},
		{402, nil, body("billing_error", "pay"), provider.Failover, provider.MarkError, time.Time{}, provider.KindBilling},
		{429, http.Header{"Retry-After": {"30"}}, body("rate_limit_error", "slow"), provider.Failover, provider.MarkRateLimited, now.Add(30 * time.Second), provider.KindRateLimit},
		{429, nil, body("rate_limit_error", "slow"), provider.Failover, provider.MarkRateLimited, time.Time{}, provider.KindRateLimit},
		{529, nil, body("overloaded_error", "Overloaded"), provider.Failover, provider.MarkOverloaded, time.Time{}, provider.KindOverloaded},
		{500, nil, body("api_error", "boom"), provider.Failover, provider.MarkNone, time.Time{}, provider.KindAPI},
		{503, nil, nil, provider.Failover, provider.MarkNone, time.Time{}, provider.KindAPI},
		{400, nil, body("invalid_request_error", "Your credit balance is too low to access the Anthropic API."), provider.Failover, provider.MarkError, time.Time{}, provider.KindBilling},
		// The words anywhere else in the message are the client's, quoted back.
		{400, nil, body("invalid_request_error", "Unexpected value(s) `Your credit balance is too low` for the `anthropic-beta` header."), provider.PassThrough, provider.MarkNone, time.Time{}, provider.KindInvalidRequest},
		{400, nil, body("not_found_error", "Your credit balance is too low"), provider.PassThrough, provider.MarkNone, time.Time{}, provider.KindNotFound},
	}
	for _, c := range cases {
		f := p.Classify(c.status, c.h, c.body, now)
		if f.Verdict != c.verdict || f.Mark.Kind != c.mark || !f.Mark.Until.Equal(c.until) || f.Kind != c.kind || f.Status != c.status {
			t.Errorf("status %d: got %+v", c.status, f)
		}
	}
	if f := p.Classify(401, nil, body("authentication_error", "invalid x-api-key"), now); f.Message != "invalid x-api-key" {
		t.Errorf("message = %q", f.Message)
	}
	if f := p.Classify(400, nil, body("invalid_request_error", "Your credit balance is too low to access the Anthropic API."), now); f.Marker != creditMarker {
		t.Errorf("credit answer without its marker: %+v", f)
	}
	if f := p.ClassifyEvent(body("authentication_error", "x"), now); f.Mark.Kind != provider.MarkVerify {
		t.Errorf("authentication event: %+v", f)
	}
	if f := p.ClassifyEvent(body("overloaded_error", "Overloaded"), now); f.Verdict != provider.Failover || f.Mark.Kind != provider.MarkOverloaded {
		t.Errorf("overloaded event: %+v", f)
	}
	if f := p.ClassifyEvent(body("invalid_request_error", "x"), now); f.Verdict != provider.PassThrough {
		t.Errorf("invalid request event: %+v", f)
	}
}

func TestRateLimitReset(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	rfc := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	cases := map[string]struct {
		h    http.Header
		want time.Time
	}{
		"None": {http.Header{}, time.Time{}},
		"UnifiedWins": {http.Header{
			"Anthropic-Ratelimit-Unified-Reset": {strconv.FormatInt(now.Add(2*time.Hour).Unix(), 10)},
			"Retry-After":                       {"5"},
		}, now.Add(2 * time.Hour)},
		"UnifiedInPastIgnored": {http.Header{
			"Anthropic-Ratelimit-Unified-Reset": {"1000"},
			"Retry-After":                       {"5"},
		}, now.Add(5 * time.Second)},
		"RetryAfterDate": {http.Header{"Retry-After": {now.Add(time.Minute).Format(http.TimeFormat)}}, now.Add(time.Minute)},
		"ExhaustedBucketsLatest": {http.Header{
			"Anthropic-Ratelimit-Requests-Remaining":      {"0"},
			"Anthropic-Ratelimit-Requests-Reset":          {rfc(20 * time.Second)},
			"Anthropic-Ratelimit-Tokens-Remaining":        {"0"},
			"Anthropic-Ratelimit-Tokens-Reset":            {rfc(40 * time.Second)},
			"Anthropic-Ratelimit-Output-Tokens-Remaining": {"1000"},
			"Anthropic-Ratelimit-Output-Tokens-Reset":     {rfc(time.Hour)},
		}, now.Add(40 * time.Second)},
	}
	for name, c := range cases {
		if got := RateLimitReset(c.h, now); !got.Equal(c.want) {
			t.Errorf("%s: got %v, want %v", name, got, c.want)
		}
	}
}

func TestErrors(t *testing.T) {
	p := New()
	rec := httptest.NewRecorder()
	p.WriteError(rec, provider.KindRateLimit, 0, `too "many"`, "req_1")
	var got errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 429 || got.Type != "error" || got.Error.Type != "rate_limit_error" || got.Error.Message != `too "many"` || got.RequestID != "req_1" {
		t.Fatalf("got %d %+v", rec.Code, got)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}

	er := provider.NewEventReader(bytes.NewReader(p.ErrorEvent(provider.KindOverloaded, "Overloaded", "req_2")))
	defer er.Release()
	ev, err := er.Next()
	if err != nil || string(ev.Name) != "error" {
		t.Fatalf("error event %q, %v", ev.Raw, err)
	}
	if f := p.ClassifyEvent(ev.Data, time.Now()); f.Kind != provider.KindOverloaded {
		t.Errorf("error event reads back as %+v", f)
	}
}

func TestMeterKeepsCacheSplitWhenDeltaHasOnlyTotal(t *testing.T) {
	m := meterStream(t, "event: message_start\ndata: {\"message\":{\"usage\":{\"input_tokens\":5,\"cache_creation_input_tokens\":30,\"cache_creation\":{\"ephemeral_5m_input_tokens\":10,\"ephemeral_1h_input_tokens\":20},\"output_tokens\":1}}}\n\n"+
		"event: message_delta\ndata: {\"usage\":{\"input_tokens\":5,\"cache_creation_input_tokens\":30,\"output_tokens\":9}}\n\n")
	if want := (provider.Usage{Input: 5, Output: 9, CacheCreation5m: 10, CacheCreation1h: 20}); m.Usage() != want {
		t.Fatalf("usage %+v, want %+v", m.Usage(), want)
	}
}

// TestOverloadedIs529: an overload is Anthropic's own 529 (which its SDKs retry), while the
// protocol-neutral status of the kind stays 503 for every other protocol.
func TestOverloadedIs529(t *testing.T) {
	rec := httptest.NewRecorder()
	New().WriteError(rec, provider.KindOverloaded, 0, "busy", "req_1")
	if rec.Code != 529 || !strings.Contains(rec.Body.String(), `"overloaded_error"`) {
		t.Errorf("got %d %s", rec.Code, rec.Body)
	}
	if s := provider.KindOverloaded.Status(); s != http.StatusServiceUnavailable {
		t.Errorf("neutral status %d", s)
	}
}
