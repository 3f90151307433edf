package gemini

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// FuzzUpstreamAnswer: whatever an upstream sends (an answer, a chunk, an error body), reading
// it never panics, never meters a negative count, and never reads a refusal of the
// account's key out of anything but a 400 with the structured reason, a 401 or a 403.
func FuzzUpstreamAnswer(f *testing.F) {
	f.Add(400, []byte(`{"error":{"code":400,"message":"x","status":"INVALID_ARGUMENT","details":[`+keyInvalid+`]}}`))
	f.Add(429, []byte(`{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[`+retry37s+`]}}`))
	f.Add(200, []byte(`{"candidates":[{"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":5,"cachedContentTokenCount":9,"thoughtsTokenCount":-3}}`))
	f.Add(200, []byte(`[{"usageMetadata":{"promptTokenCount":1e30}},{"usageMetadata":null}]`))
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		p := New()
		m := p.NewMeter()
		m.Event(nil, body)
		for _, u := range []provider.Usage{m.Usage(), p.JSONUsage(body)} {
			if u.Input < 0 || u.Output < 0 || u.CacheRead < 0 || u.CacheCreation5m != 0 || u.CacheCreation1h != 0 {
				t.Fatalf("usage %+v from %q", u, body)
			}
		}
		f := p.Classify(status, http.Header{}, body, now)
		verify := f.Mark.Kind == provider.MarkVerify
		if verify && status != 400 && status != 401 && status != 403 {
			t.Fatalf("status %d read as a key refusal", status)
		}
		if !f.Mark.Until.IsZero() && f.Mark.Until.Before(now) {
			t.Fatalf("a mark that ended before now: %+v", f)
		}
		p.ClassifyEvent(body, now)
	})
}

// FuzzParse: a client request either is refused or yields a model the ledger can store and
// an upstream URL that keeps the model inside its path segment.
func FuzzParse(f *testing.F) {
	f.Add("gemini-3.8-flash:streamGenerateContent", "alt=sse", []byte(genBody))
	f.Add("m:countTokens", "", []byte(`{"generateContentRequest":{}}`))
	f.Add("a?b#c:generateContent", "", []byte(`{"contents":[]}`))
	f.Fuzz(func(t *testing.T, rest, query string, body []byte) {
		if _, err := url.ParseRequestURI("/?" + query); err != nil {
			return // the server refuses such a request line before any handler
		}
		in := provider.Inbound{Header: http.Header{}, Path: "/v1beta/models/" + rest, RawQuery: query}
		op := postOp(in.Path)
		req, err := New().ParseRequest(op, in, body)
		if err != nil || (op != provider.OpMessages && op != provider.OpCountTokens) {
			return
		}
		if provider.CheckModel(req.Model) != nil {
			t.Fatalf("model %q accepted", req.Model)
		}
		up, err := New().NewUpstreamRequest(context.Background(), op, provider.Target{Account: account(), Model: req.Model}, in, body)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(up.URL.EscapedPath(), "/base/v1beta/models/"+url.PathEscape(req.Model)+":") || up.URL.Host != "127.0.0.1:9" {
			t.Fatalf("upstream URL %s", up.URL)
		}
	})
}
