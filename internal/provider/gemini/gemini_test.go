package gemini

import (
	"bytes"
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

const genBody = `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"systemInstruction":{"parts":[{"text":"be brief"}]}}`

func TestOperations(t *testing.T) {
	for path, want := range map[string]provider.Operation{
		"/v1beta/models/gemini-3.8-flash:generateContent":       provider.OpMessages,
		"/v1beta/models/gemini-3.8-flash:streamGenerateContent": provider.OpMessages,
		"/v1beta/models/gemini-3.8-flash:countTokens":           provider.OpCountTokens,
		"/v1beta/models/gemini-3.8-flash:embedContent":          provider.OpNotFound,
		"/v1beta/models/gemini-3.8-flash":                       provider.OpNotFound,
		"/v1beta/models/:generateContent":                       provider.OpNotFound,
		"/v1/models/gemini-3.8-flash:generateContent":           provider.OpMessages,
		"/v1/models/gemini-3.8-flash:countTokens":               provider.OpCountTokens,
		"/v2/models/gemini-3.8-flash:generateContent":           provider.OpNotFound,
	} {
		if got := postOp(path); got != want {
			t.Errorf("POST %s: %v, want %v", path, got, want)
		}
	}
	for path, want := range map[string]provider.Operation{
		"/v1beta/models/gemini-3.8-flash":             provider.OpModels,
		"/v1beta/models/":                             provider.OpModels,
		"/v1beta/models/gemini-3.8-flash:countTokens": provider.OpNotFound,
		"/v1beta/models/a/b":                          provider.OpNotFound,
	} {
		if got := getOp(path); got != want {
			t.Errorf("GET %s: %v, want %v", path, got, want)
		}
	}
}

func TestParseRequest(t *testing.T) {
	p := New()
	parse := func(op provider.Operation, path, query, body string) (provider.Request, error) {
		return p.ParseRequest(op, provider.Inbound{Header: http.Header{}, Path: path, RawQuery: query}, []byte(body))
	}
	req, err := parse(provider.OpMessages, "/v1beta/models/gemini-3.8-flash:streamGenerateContent", "alt=sse", genBody)
	if err != nil || req.Model != "gemini-3.8-flash" || !req.Stream || req.Session == "" {
		t.Fatalf("stream with alt=sse: %+v, %v", req, err)
	}
	// Without alt=sse the answer is one JSON array: not an event stream.
	if req, err := parse(provider.OpMessages, "/v1beta/models/gemini-3.8-flash:streamGenerateContent", "", genBody); err != nil || req.Stream || req.Variant != variantArray {
		t.Fatalf("stream without alt=sse: %+v, %v", req, err)
	}
	if req, err := parse(provider.OpMessages, "/v1beta/models/gemini-3.8-flash:generateContent", "alt=sse", genBody); err != nil || req.Stream || req.Variant != "" {
		t.Fatalf("generateContent: %+v, %v", req, err)
	}
	if req, err := parse(provider.OpCountTokens, "/v1beta/models/m:countTokens", "", `{"generateContentRequest":{"model":"models/m","contents":[]}}`); err != nil || req.Model != "m" || req.Session != "" {
		t.Fatalf("countTokens: %+v, %v", req, err)
	}
	if req, err := parse(provider.OpModels, "/v1beta/models/gemini-3.8-flash", "", ""); err != nil || req.Model != "gemini-3.8-flash" {
		t.Fatalf("one model: %+v, %v", req, err)
	}
	if req, err := parse(provider.OpModels, "/v1beta/models", "", ""); err != nil || req.Model != "" {
		t.Fatalf("model list: %+v, %v", req, err)
	}
	for name, c := range map[string][2]string{
		"NotJSON":        {"/v1beta/models/m:generateContent", `{"contents":`},
		"NotObject":      {"/v1beta/models/m:generateContent", `[1]`},
		"NoContents":     {"/v1beta/models/m:generateContent", `{"generationConfig":{}}`},
		"DuplicateKey":   {"/v1beta/models/m:generateContent", `{"contents":[],"contents":[]}`},
		"ControlInModel": {"/v1beta/models/m\x00x:generateContent", genBody},
		"LongModel":      {"/v1beta/models/" + strings.Repeat("m", provider.MaxModelLen+1) + ":generateContent", genBody},
	} {
		if _, err := parse(provider.OpMessages, c[0], "", c[1]); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSession(t *testing.T) {
	p := New()
	session := func(body string) string {
		t.Helper()
		req, err := p.ParseRequest(provider.OpMessages, provider.Inbound{Path: "/v1beta/models/m:generateContent"}, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return req.Session
	}
	turn1 := `{"systemInstruction":{"parts":[{"text":"cli"}]},"contents":[{"role":"user","parts":[{"text":"env"}]}]}`
	turn2 := `{"systemInstruction":{"parts":[{"text":"cli"}]},"contents":[{"role":"user","parts":[{"text":"env"}]},{"role":"model","parts":[{"text":"ok"}]},{"role":"user","parts":[{"text":"more"}]}]}`
	other := `{"systemInstruction":{"parts":[{"text":"cli"}]},"contents":[{"role":"user","parts":[{"text":"another"}]}]}`
	if a, b := session(turn1), session(turn2); a == "" || a != b {
		t.Errorf("turns of one conversation: %q vs %q", a, b)
	}
	if session(turn1) == session(other) {
		t.Error("two conversations share a session")
	}
	c1 := `{"cachedContent":"cachedContents/abc","contents":[{"role":"user","parts":[{"text":"x"}]}]}`
	c2 := `{"cachedContent":"cachedContents/abc","contents":[{"role":"user","parts":[{"text":"y"}]}]}`
	if a, b := session(c1), session(c2); a == "" || a != b {
		t.Errorf("one cached content: %q vs %q", a, b)
	}
	if got := session(`{"contents":[]}`); got != "" {
		t.Errorf("nothing to stick on gave %q", got)
	}
}

func account() *store.Account {
	return &store.Account{ID: 7, Platform: store.PlatformGemini, Type: store.AccountTypeAPIKey,
		BaseURL: "http://127.0.0.1:9/base/", Credentials: store.Credentials{APIKey: "AIza-upstream"}}
}

func TestUpstreamRequest(t *testing.T) {
	p := New()
	body := []byte(genBody)
	client := http.Header{
		"Authorization":     {"Bearer fk-client"},
		"Cookie":            {"a=1"},
		"X-Goog-Api-Client": {"google-genai-sdk/1.30.0 gl-node/v20.20.2"},
		"User-Agent":        {"GeminiCLI/0.61.0"},
		"Accept-Encoding":   {"gzip"},
		"X-Forwarded-For":   {"10.0.0.1"},
	}
	in := provider.Inbound{Header: client, Path: "/v1beta/models/alias:streamGenerateContent", RawQuery: "alt=sse"}
	req, err := p.NewUpstreamRequest(context.Background(), provider.OpMessages,
		provider.Target{Account: account(), Model: "gemini-3.8-flash", Rewrite: true}, in, body)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := req.URL.String(), "http://127.0.0.1:9/base/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse"; got != want {
		t.Errorf("url %s, want %s", got, want)
	}
	for name, want := range map[string]string{
		"X-Goog-Api-Key": "AIza-upstream", "Authorization": "", "Cookie": "", "Accept-Encoding": "", "X-Forwarded-For": "",
		"X-Goog-Api-Client": "google-genai-sdk/1.30.0 gl-node/v20.20.2", "User-Agent": "GeminiCLI/0.61.0",
		"Content-Type": "application/json",
	} {
		if got := req.Header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if got, _ := io.ReadAll(req.Body); !bytes.Equal(got, body) {
		t.Errorf("body changed: %s", got)
	}

	// The Go SDK's v1 path goes upstream as v1.
	v1, err := p.NewUpstreamRequest(context.Background(), provider.OpMessages, provider.Target{Account: account(), Model: "gemini-3.8-flash"},
		provider.Inbound{Path: "/v1/models/gemini-3.8-flash:generateContent"}, body)
	if err != nil || v1.URL.Path != "/base/v1/models/gemini-3.8-flash:generateContent" {
		t.Fatalf("v1: %v %v", v1, err)
	}

	list, err := p.NewUpstreamRequest(context.Background(), provider.OpModels, provider.Target{Account: account()}, provider.Inbound{}, nil)
	if err != nil || list.Method != http.MethodGet || list.URL.Path != "/base/v1beta/models" || list.Body != nil {
		t.Fatalf("model list: %v %v", list, err)
	}
	one, err := p.NewUpstreamRequest(context.Background(), provider.OpModels, provider.Target{Account: account(), Model: "gemini-3.8-flash"},
		provider.Inbound{Path: "/v1beta/models/alias"}, nil)
	if err != nil || one.URL.Path != "/base/v1beta/models/gemini-3.8-flash" {
		t.Fatalf("one model: %v %v", one, err)
	}
	def := &store.Account{ID: 1, Type: store.AccountTypeAPIKey, Credentials: store.Credentials{APIKey: "k"}}
	if r, err := p.NewUpstreamRequest(context.Background(), provider.OpCountTokens, provider.Target{Account: def, Model: "m"},
		provider.Inbound{Path: "/v1beta/models/m:countTokens"}, []byte(`{}`)); err != nil || r.URL.String() != DefaultBaseURL+"/v1beta/models/m:countTokens" {
		t.Fatalf("default base: %v %v", r, err)
	}
	for _, acct := range []*store.Account{{ID: 2, Type: store.AccountTypeAPIKey}, {ID: 3, Type: store.AccountTypeOAuth, Credentials: store.Credentials{AccessToken: "t"}}} {
		if _, err := p.NewUpstreamRequest(context.Background(), provider.OpMessages, provider.Target{Account: acct, Model: "m"}, in, body); err == nil {
			t.Errorf("account %d built a request", acct.ID)
		}
	}
}

// A stream as the API sends it: usageMetadata on every chunk, cumulative, with the prompt
// count including the cached tokens and thoughts reported apart from the candidates.
const sampleStream = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":120,\"cachedContentTokenCount\":100,\"totalTokenCount\":120},\"modelVersion\":\"gemini-3.8-flash\"}\r\n\r\n" +
	"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo \\\"usageMetadata\\\":{\\\"candidatesTokenCount\\\":999}\"}],\"role\":\"model\"},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":120,\"cachedContentTokenCount\":100,\"candidatesTokenCount\":4,\"thoughtsTokenCount\":30,\"totalTokenCount\":154}}\r\n\r\n" +
	"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"!\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":120,\"cachedContentTokenCount\":100,\"candidatesTokenCount\":7,\"thoughtsTokenCount\":30,\"toolUsePromptTokenCount\":5,\"totalTokenCount\":162}}\r\n\r\n"

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
	// Input 120-100 cached + 5 tool-use prompt; output 7 candidates + 30 thoughts; the last
	// usageMetadata, not a sum of the three.
	want := provider.Usage{Input: 25, CacheRead: 100, Output: 37}
	if m.Usage() != want || !m.Complete() {
		t.Fatalf("usage %+v complete %v, want %+v complete", m.Usage(), m.Complete(), want)
	}
	first, _, _ := strings.Cut(sampleStream, "\r\n\r\n")
	if m := meterStream(t, first+"\r\n\r\n"); m.Complete() || m.Usage() != (provider.Usage{Input: 20, CacheRead: 100}) {
		t.Fatalf("cut after the first chunk: %+v complete %v", m.Usage(), m.Complete())
	}
	blocked := "data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{\"promptTokenCount\":9,\"totalTokenCount\":9}}\r\n\r\n"
	if m := meterStream(t, blocked); !m.Complete() || m.Usage() != (provider.Usage{Input: 9}) {
		t.Fatalf("blocked prompt: %+v complete %v", m.Usage(), m.Complete())
	}
	if !New().NewMeter().Event(nil, []byte(`{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}`)) {
		t.Fatal("error chunk not reported")
	}
}

func TestJSONUsage(t *testing.T) {
	one := []byte(`{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"finishReason":"STOP","index":0}],
 "usageMetadata":{"promptTokenCount":50,"cachedContentTokenCount":20,"candidatesTokenCount":6,"thoughtsTokenCount":11,"totalTokenCount":67,
 "promptTokensDetails":[{"modality":"TEXT","tokenCount":50}]},"modelVersion":"gemini-3.8-flash","responseId":"r1"}`)
	if got, want := New().JSONUsage(one), (provider.Usage{Input: 30, CacheRead: 20, Output: 17}); got != want {
		t.Errorf("generateContent: %+v, want %+v", got, want)
	}
	array := []byte(`[{"candidates":[{"content":{"parts":[{"text":"a"}]}}],"usageMetadata":{"promptTokenCount":8,"totalTokenCount":8}},
{"candidates":[{"content":{"parts":[{"text":"b"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":3,"totalTokenCount":11}}]`)
	if got, want := New().JSONUsage(array), (provider.Usage{Input: 8, Output: 3}); got != want {
		t.Errorf("stream as a JSON array: %+v, want %+v", got, want)
	}
	if got := New().JSONUsage([]byte(`{"totalTokens":42}`)); got != (provider.Usage{}) {
		t.Errorf("no usage: %+v", got)
	}
}

func googleError(code int, status, details string) []byte {
	b := `{"error":{"code":` + itoa(code) + `,"message":"m ` + status + `","status":"` + status + `"`
	if details != "" {
		b += `,"details":[` + details + `]`
	}
	return []byte(b + `}}`)
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

const (
	keyInvalid = `{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}`
	retry37s   = `{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"x"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}`
)

func TestClassify(t *testing.T) {
	p := New()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		status  int
		h       http.Header
		body    []byte
		verdict provider.Verdict
		mark    provider.MarkKind
		until   time.Time
		kind    provider.ErrorKind
	}{
		{"BadRequest", 400, nil, googleError(400, "INVALID_ARGUMENT", ""), provider.PassThrough, provider.MarkNone, time.Time{}, provider.KindInvalidRequest},
		{"KeyInvalid", 400, nil, googleError(400, "INVALID_ARGUMENT", keyInvalid), provider.Failover, provider.MarkVerify, time.Time{}, provider.KindAuthentication},
		{"Unauthenticated", 401, nil, googleError(401, "UNAUTHENTICATED", ""), provider.Failover, provider.MarkVerify, time.Time{}, provider.KindAuthentication},
		{"PermissionDenied", 403, nil, googleError(403, "PERMISSION_DENIED", ""), provider.Failover, provider.MarkVerify, time.Time{}, provider.KindPermission},
		{"NotFound", 404, nil, googleError(404, "NOT_FOUND", ""), provider.PassThrough, provider.MarkNone, time.Time{}, provider.KindNotFound},
		{"RetryInfo", 429, nil, googleError(429, "RESOURCE_EXHAUSTED", retry37s), provider.Failover, provider.MarkRateLimited, now.Add(37 * time.Second), provider.KindRateLimit},
		{"RetryAfterHeader", 429, http.Header{"Retry-After": {"5"}}, googleError(429, "RESOURCE_EXHAUSTED", ""), provider.Failover, provider.MarkRateLimited, now.Add(5 * time.Second), provider.KindRateLimit},
		{"NoDelay", 429, nil, googleError(429, "RESOURCE_EXHAUSTED", ""), provider.Failover, provider.MarkRateLimited, time.Time{}, provider.KindRateLimit},
		{"Unavailable", 503, nil, googleError(503, "UNAVAILABLE", ""), provider.Failover, provider.MarkOverloaded, time.Time{}, provider.KindOverloaded},
		{"Internal", 500, nil, googleError(500, "INTERNAL", ""), provider.Failover, provider.MarkNone, time.Time{}, provider.KindAPI},
		{"Deadline", 504, nil, []byte("<html>gateway timeout</html>"), provider.Failover, provider.MarkNone, time.Time{}, provider.KindTimeout},
		// The reason must be a structured ErrorInfo detail, not words in the message.
		{"ReasonInMessageOnly", 400, nil, []byte(`{"error":{"code":400,"message":"API_KEY_INVALID","status":"INVALID_ARGUMENT"}}`), provider.PassThrough, provider.MarkNone, time.Time{}, provider.KindInvalidRequest},
	}
	for _, c := range cases {
		f := p.Classify(c.status, c.h, c.body, now)
		if f.Verdict != c.verdict || f.Mark.Kind != c.mark || !f.Mark.Until.Equal(c.until) || f.Kind != c.kind || f.Status != c.status {
			t.Errorf("%s: got %+v", c.name, f)
		}
	}
	if f := p.Classify(429, nil, googleError(429, "RESOURCE_EXHAUSTED", retry37s), now); f.Message != "m RESOURCE_EXHAUSTED" {
		t.Errorf("message %q", f.Message)
	}

	events := []struct {
		data    []byte
		verdict provider.Verdict
		mark    provider.MarkKind
		kind    provider.ErrorKind
	}{
		{googleError(503, "UNAVAILABLE", ""), provider.Failover, provider.MarkOverloaded, provider.KindOverloaded},
		{googleError(429, "RESOURCE_EXHAUSTED", retry37s), provider.Failover, provider.MarkRateLimited, provider.KindRateLimit},
		{googleError(403, "PERMISSION_DENIED", ""), provider.Failover, provider.MarkVerify, provider.KindAuthentication},
		{googleError(500, "INTERNAL", ""), provider.Failover, provider.MarkNone, provider.KindAPI},
		{googleError(400, "INVALID_ARGUMENT", ""), provider.PassThrough, provider.MarkNone, provider.KindInvalidRequest},
	}
	for _, e := range events {
		f := p.ClassifyEvent(e.data, now)
		if f.Verdict != e.verdict || f.Mark.Kind != e.mark || f.Kind != e.kind {
			t.Errorf("event %s: got %+v", e.data, f)
		}
	}
	if f := p.ClassifyEvent(googleError(429, "RESOURCE_EXHAUSTED", retry37s), now); !f.Mark.Until.Equal(now.Add(37 * time.Second)) {
		t.Errorf("event retry delay: %v", f.Mark.Until)
	}
}

type gErr struct {
	Error struct {
		Code    int              `json:"code"`
		Message string           `json:"message"`
		Status  string           `json:"status"`
		Details []map[string]any `json:"details"`
	} `json:"error"`
}

func TestWriteError(t *testing.T) {
	cases := []struct {
		kind   provider.ErrorKind
		status int
		code   int
		word   string
	}{
		{provider.KindAuthentication, 0, 400, "INVALID_ARGUMENT"},
		{provider.KindPermission, 0, 403, "PERMISSION_DENIED"},
		{provider.KindInvalidRequest, 0, 400, "INVALID_ARGUMENT"},
		{provider.KindNotFound, 0, 404, "NOT_FOUND"},
		{provider.KindTooLarge, 0, 413, "INVALID_ARGUMENT"},
		{provider.KindBilling, 0, 402, "FAILED_PRECONDITION"},
		{provider.KindRateLimit, 0, 429, "RESOURCE_EXHAUSTED"},
		{provider.KindOverloaded, 0, 503, "UNAVAILABLE"},
		{provider.KindOverloaded, 503, 503, "UNAVAILABLE"},
		{provider.KindAPI, 0, 500, "INTERNAL"},
		{provider.KindAPI, 502, 502, "UNAVAILABLE"},
		{provider.KindTimeout, 0, 504, "DEADLINE_EXCEEDED"},
		{provider.KindInvalidRequest, 408, 408, "INVALID_ARGUMENT"},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		New().WriteError(rec, c.kind, c.status, `say "why"`, "req-1")
		var got gErr
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		e := got.Error
		if rec.Code != c.code || e.Code != c.code || e.Status != c.word || e.Message != `say "why"` {
			t.Errorf("%s/%d: %d %s", c.kind, c.status, rec.Code, rec.Body)
		}
		if last := e.Details[len(e.Details)-1]; last["requestId"] != "req-1" {
			t.Errorf("%s: no request id in %s", c.kind, rec.Body)
		}
		if hasKey := len(e.Details) == 2 && e.Details[0]["reason"] == "API_KEY_INVALID"; hasKey != (c.kind == provider.KindAuthentication) {
			t.Errorf("%s: details %v", c.kind, e.Details)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("content type %q", ct)
		}
	}

	// The error chunk of a stream reads back as the error it reports.
	er := provider.NewEventReader(bytes.NewReader(New().ErrorEvent(provider.KindOverloaded, "busy", "req-2")))
	defer er.Release()
	ev, err := er.Next()
	if err != nil || len(ev.Name) != 0 {
		t.Fatalf("error event %q, %v", ev.Raw, err)
	}
	if f := New().ClassifyEvent(ev.Data, time.Now()); f.Kind != provider.KindOverloaded {
		t.Errorf("error event reads back as %+v", f)
	}
	if New().PingEvent() != nil {
		t.Error("Gemini has no keep-alive event its clients skip")
	}
}

func TestModels(t *testing.T) {
	rec := httptest.NewRecorder()
	New().WriteModels(rec, []string{"a", "b"})
	var page struct {
		Models []struct {
			Name    string   `json:"name"`
			Methods []string `json:"supportedGenerationMethods"`
		} `json:"models"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || len(page.Models) != 2 || page.Models[1].Name != "models/b" || len(page.Models[0].Methods) == 0 {
		t.Fatalf("%s %v", rec.Body, err)
	}
	rec = httptest.NewRecorder()
	New().WriteModel(rec, "a")
	if !strings.Contains(rec.Body.String(), `"name":"models/a"`) || rec.Code != 200 {
		t.Fatalf("one model: %d %s", rec.Code, rec.Body)
	}
}

// TestUpstreamRequestRewritesWrappedModel: under a mapping, a countTokens body that wraps a
// generate request names the upstream model there too, and nothing else changes; a body
// without the wrapper, or a generation, goes as it came.
func TestUpstreamRequestRewritesWrappedModel(t *testing.T) {
	send := func(op provider.Operation, path, body string) string {
		t.Helper()
		req, err := New().NewUpstreamRequest(context.Background(), op,
			provider.Target{Account: account(), Model: "gemini-3.8-flash", Rewrite: true}, provider.Inbound{Path: path}, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(req.Body)
		return string(got)
	}
	wrapped := `{"generateContentRequest": {"contents":[{"parts":[{"text":"models/alias"}]}], "mod\u0065l" : "models/alias"}}`
	want := `{"generateContentRequest": {"contents":[{"parts":[{"text":"models/alias"}]}], "mod\u0065l" : "models/gemini-3.8-flash"}}`
	if got := send(provider.OpCountTokens, "/v1beta/models/alias:countTokens", wrapped); got != want {
		t.Errorf("wrapped count:\n got %s\nwant %s", got, want)
	}
	for _, c := range []struct {
		op   provider.Operation
		path string
		body string
	}{
		{provider.OpCountTokens, "/v1beta/models/alias:countTokens", `{"contents":[],"model":"models/alias"}`},
		{provider.OpMessages, "/v1beta/models/alias:generateContent", wrapped},
	} {
		if got := send(c.op, c.path, c.body); got != c.body {
			t.Errorf("%s changed: %s", c.path, got)
		}
	}
}
