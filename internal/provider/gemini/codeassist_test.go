package gemini

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

func googleLogin() *store.Account {
	return &store.Account{ID: 9, Platform: store.PlatformGemini, Type: store.AccountTypeOAuth, BaseURL: "http://127.0.0.1:9/ca/",
		Credentials: store.Credentials{AccessToken: "ya29.token", RefreshToken: "1//refresh", Extra: map[string]string{ExtraProject: "proj-1"}}}
}

// TestCodeAssistRequest: a Google login's request goes to Code Assist wrapped in its
// envelope, with the login's token and project, and never the Gemini API's key header.
func TestCodeAssistRequest(t *testing.T) {
	p := New()
	in := provider.Inbound{Path: "/v1beta/models/alias:streamGenerateContent", RawQuery: "alt=sse", Header: http.Header{
		"X-Goog-Api-Client": {"google-genai-sdk/1.30.0 gl-node/v20.20.2"}, "User-Agent": {"GeminiCLI/0.61.0/gemini-3.8-flash (linux; x64)"},
		"Cookie": {"a=1"}}}
	req, err := p.NewUpstreamRequest(context.Background(), provider.OpMessages,
		provider.Target{Account: googleLogin(), Model: "gemini-3.8-flash", Rewrite: true}, in, []byte(genBody))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := req.URL.String(), "http://127.0.0.1:9/ca/v1internal:streamGenerateContent?alt=sse"; got != want {
		t.Errorf("url %s, want %s", got, want)
	}
	for name, want := range map[string]string{"Authorization": "Bearer ya29.token", "X-Goog-Api-Key": "", "Cookie": "",
		"X-Goog-Api-Client": "google-genai-sdk/1.30.0 gl-node/v20.20.2", "User-Agent": "GeminiCLI/0.61.0/gemini-3.8-flash (linux; x64)",
		"Content-Type": "application/json"} {
		if got := req.Header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	body, _ := io.ReadAll(req.Body)
	env := gjson.ParseBytes(body)
	if env.Get("model").Str != "gemini-3.8-flash" || env.Get("project").Str != "proj-1" || env.Get("user_prompt_id").Str == "" ||
		env.Get("request.contents.0.parts.0.text").Str != "hi" || env.Get("request.systemInstruction.parts.0.text").Str != "be brief" ||
		len(env.Get("request.session_id").Str) != 32 || !json.Valid(body) {
		t.Fatalf("envelope %s", body)
	}
	// An array stream is asked for as SSE: the answer is rebuilt on the way down.
	arr, err := p.NewUpstreamRequest(context.Background(), provider.OpMessages, provider.Target{Account: googleLogin(), Model: "m"},
		provider.Inbound{Path: "/v1/models/m:streamGenerateContent"}, []byte(genBody))
	if err != nil || arr.URL.RawQuery != "alt=sse" {
		t.Fatalf("array stream: %v %v", arr, err)
	}
	// A session the client names is kept as it is.
	own, _ := p.NewUpstreamRequest(context.Background(), provider.OpMessages, provider.Target{Account: googleLogin(), Model: "m"},
		provider.Inbound{Path: "/v1beta/models/m:generateContent"}, []byte(`{"contents":[{"parts":[{"text":"x"}]}],"session_id":"s-1"}`))
	if b, _ := io.ReadAll(own.Body); gjson.GetBytes(b, "request.session_id").Str != "s-1" || strings.Count(string(b), "session_id") != 1 ||
		own.URL.Path != "/ca/v1internal:generateContent" {
		t.Fatalf("own session: %s %s", own.URL, b)
	}

	count, err := p.NewUpstreamRequest(context.Background(), provider.OpCountTokens, provider.Target{Account: googleLogin(), Model: "gemini-3.8-flash"},
		provider.Inbound{Path: "/v1beta/models/a:countTokens"}, []byte(`{"generateContentRequest":{"model":"models/a","contents":[{"parts":[{"text":"x"}]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(count.Body); count.URL.Path != "/ca/v1internal:countTokens" ||
		string(b) != `{"request":{"model":"models/gemini-3.8-flash","contents":[{"parts":[{"text":"x"}]}]}}` {
		t.Fatalf("count: %s %s", count.URL, b)
	}
	// The confirming call of refused credentials: loadCodeAssist with the login's project.
	load, err := p.NewUpstreamRequest(context.Background(), provider.OpModels, provider.Target{Account: googleLogin()}, provider.Inbound{Header: http.Header{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(load.Body); load.Method != http.MethodPost || load.URL.Path != "/ca/v1internal:loadCodeAssist" ||
		gjson.GetBytes(b, "cloudaicompanionProject").Str != "proj-1" || gjson.GetBytes(b, "metadata.pluginType").Str != "GEMINI" {
		t.Fatalf("load: %s %s", load.URL, b)
	}
	def := googleLogin()
	def.BaseURL = ""
	if r, err := p.NewUpstreamRequest(context.Background(), provider.OpModels, provider.Target{Account: def}, provider.Inbound{}, nil); err != nil ||
		r.URL.String() != DefaultCodeAssistURL+"/v1internal:loadCodeAssist" {
		t.Fatalf("default base: %v %v", r, err)
	}
	for name, mod := range map[string]func(*store.Account){
		"NoToken":   func(a *store.Account) { a.Credentials.AccessToken = "" },
		"NoProject": func(a *store.Account) { a.Credentials.Extra = nil },
	} {
		a := googleLogin()
		mod(a)
		if _, err := p.NewUpstreamRequest(context.Background(), provider.OpMessages, provider.Target{Account: a, Model: "m"}, in, []byte(genBody)); !errors.Is(err, provider.ErrNoCredentials) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Code Assist's SSE answer: each chunk wrapped, the last one with the finish reason and the
// final usage.
const wrappedStream = "data: {\"response\":{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hel\"}]}}],\"usageMetadata\":{\"promptTokenCount\":12,\"totalTokenCount\":12},\"modelVersion\":\"gemini-3.8-flash\"},\"traceId\":\"t1\"}\r\n\r\n" +
	"data: {\"response\":{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"lo\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":12,\"candidatesTokenCount\":5,\"thoughtsTokenCount\":2,\"totalTokenCount\":19},\"modelVersion\":\"gemini-3.8-flash\"},\"traceId\":\"t1\"}\r\n\r\n"

func adapt(t *testing.T, op provider.Operation, req provider.Request, contentType string, body io.Reader) (*http.Response, io.Reader) {
	t.Helper()
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {contentType}}, ContentLength: 1234}
	return resp, New().AdaptAnswer(op, provider.Target{Account: googleLogin(), Model: "gemini-3.8-flash"}, req, resp, body)
}

// TestCodeAssistAnswers: what a Gemini client reads of a Google login's answer is the plain
// Gemini API, metered from the unwrapped usage, in each of the three shapes.
func TestCodeAssistAnswers(t *testing.T) {
	resp, r := adapt(t, provider.OpMessages, provider.Request{Stream: true}, "text/event-stream", strings.NewReader(wrappedStream))
	out, err := io.ReadAll(r)
	if err != nil || resp.ContentLength != -1 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("sse: %v %+v", err, resp)
	}
	if strings.Contains(string(out), `"response"`) || strings.Contains(string(out), "traceId") || strings.Count(string(out), "data: {\"candidates\"") != 2 {
		t.Fatalf("sse not unwrapped: %s", out)
	}
	if m := meterStream(t, string(out)); !m.Complete() || m.Usage() != (provider.Usage{Input: 12, Output: 7}) {
		t.Fatalf("sse usage %+v complete %v", m.Usage(), m.Complete())
	}

	resp, r = adapt(t, provider.OpMessages, provider.Request{Variant: variantArray}, "text/event-stream", strings.NewReader(wrappedStream))
	out, err = io.ReadAll(r)
	var elems []map[string]json.RawMessage
	if err != nil || json.Unmarshal(out, &elems) != nil || len(elems) != 2 || elems[1]["candidates"] == nil ||
		resp.Header.Get("Content-Type") != "application/json; charset=UTF-8" || resp.ContentLength != -1 {
		t.Fatalf("array: %v %s", err, out)
	}
	if got := New().JSONUsage(out); got != (provider.Usage{Input: 12, Output: 7}) {
		t.Fatalf("array usage %+v", got)
	}
	// A stream that breaks after its first chunk: the array stops between two elements
	// with the read error, where the gateway's array end completes it.
	first, _, _ := strings.Cut(wrappedStream, "\r\n\r\n")
	_, r = adapt(t, provider.OpMessages, provider.Request{Variant: variantArray}, "text/event-stream",
		io.MultiReader(strings.NewReader(first+"\r\n\r\n"), iotest.ErrReader(io.ErrUnexpectedEOF)))
	out, err = io.ReadAll(r)
	end := New().NewArrayEnd(provider.Request{Variant: variantArray})
	end.Add(out)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !json.Valid(append(out, end.ErrorEnd(provider.KindAPI, "broke", "")...)) {
		t.Fatalf("broken array: %v %q", err, out)
	}

	one := `{"response":{"candidates":[{"content":{"parts":[{"text":"Hi"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":50,"cachedContentTokenCount":20,"candidatesTokenCount":6,"totalTokenCount":56}},"traceId":"t2"}`
	_, r = adapt(t, provider.OpMessages, provider.Request{}, "application/json", strings.NewReader(one))
	out, err = io.ReadAll(r)
	if err != nil || gjson.GetBytes(out, "candidates.0.content.parts.0.text").Str != "Hi" || gjson.GetBytes(out, "traceId").Exists() {
		t.Fatalf("json: %v %s", err, out)
	}
	if got := New().JSONUsage(out); got != (provider.Usage{Input: 30, CacheRead: 20, Output: 6}) {
		t.Fatalf("json usage %+v", got)
	}
	// An error object inside a stream has no envelope: it passes, and is read as an error.
	_, r = adapt(t, provider.OpMessages, provider.Request{Stream: true}, "text/event-stream",
		strings.NewReader("data: {\"error\":{\"code\":503,\"message\":\"overloaded\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n"))
	out, _ = io.ReadAll(r)
	if !New().NewMeter().Event(nil, []byte(strings.TrimSpace(strings.TrimPrefix(string(out), "data: ")))) {
		t.Fatalf("error chunk: %s", out)
	}

	_, r = adapt(t, provider.OpModels, provider.Request{}, "application/json", strings.NewReader(`{"currentTier":{"id":"free-tier"}}`))
	out, _ = io.ReadAll(r)
	if gjson.GetBytes(out, "models.#").Int() != int64(len(CodeAssistModels)) {
		t.Fatalf("models: %s", out)
	}
	// An API-key account's answer is the Gemini API's own.
	resp = &http.Response{Header: http.Header{}, ContentLength: 5}
	in := strings.NewReader("x")
	if New().AdaptAnswer(provider.OpMessages, provider.Target{Account: account()}, provider.Request{}, resp, in) != io.Reader(in) {
		t.Fatal("an API-key answer was adapted")
	}
}
