package openai

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// FuzzParseRewrite: a client body is either refused, or the upstream body built from it is
// valid JSON holding the account's model once (an escaped or duplicate spelling never leaves
// the client's model beside it) and, for a chat stream, asks for usage.
func FuzzParseRewrite(f *testing.F) {
	f.Add("/v1/chat/completions", []byte(`{"model":"gpt-6-luna","stream":true,"messages":[]}`))
	f.Add("/v1/chat/completions", []byte(`{"model":"m","stream":true,"stream_options":{"include_usage":false,"x":1}}`))
	f.Add("/v1/chat/completions", []byte(`{"stream_options":null,"model":"m","stream":true}`))
	f.Add("/v1/responses", []byte(`{"mod\u0065l":"gpt-6-sol","input":[{"role":"user"}],"previous_response_id":"resp_1"}`))
	f.Add("/responses", []byte(` {"model":"a","stream":false} `))
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		p := New()
		in := inbound(path, nil)
		req, err := p.ParseRequest(provider.OpMessages, in, body)
		if err != nil {
			return
		}
		if provider.CheckModel(req.Model) != nil {
			t.Fatalf("model %q accepted", req.Model)
		}
		const mapped = "upstream-model"
		up, err := p.NewUpstreamRequest(context.Background(), provider.OpMessages,
			provider.Target{Account: account(), Model: mapped, Rewrite: true}, in, body)
		if err != nil {
			if isChat(path) && req.Stream {
				return // a stream_options of another type is left to the upstream to refuse
			}
			t.Fatalf("an accepted body could not be sent: %v", err)
		}
		out, _ := io.ReadAll(up.Body)
		models := 0
		if err := provider.ReadObject(out, func(m provider.Member) error {
			if m.Key == "model" {
				models++
				if m.Value.Str != mapped {
					t.Fatalf("upstream model %s in %s", m.Value.Raw, out)
				}
			}
			return nil
		}); err != nil {
			t.Fatalf("upstream body %s does not parse: %v (client sent %s)", out, err, body)
		}
		if models != 1 {
			t.Fatalf("%d model members in %s", models, out)
		}
		if req.Variant == variantChatUsage && gjson.GetBytes(out, "stream_options").IsObject() &&
			gjson.GetBytes(out, "stream_options.include_usage").Type != gjson.True {
			t.Fatalf("a chat stream that does not ask for usage: %s", out)
		}
	})
}

// FuzzUpstreamAnswer: whatever an upstream sends, reading it never panics, never meters a
// negative count, and never reads a refusal of the account's key out of anything but a 401
// or a 403.
func FuzzUpstreamAnswer(f *testing.F) {
	f.Add(429, []byte(`{"error":{"type":"insufficient_quota","code":"insufficient_quota","message":"x"}}`))
	f.Add(200, []byte(`{"id":"c","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":12}}}`))
	f.Add(200, []byte(`{"type":"response.completed","response":{"usage":{"input_tokens":1e30,"output_tokens":-2,"input_tokens_details":{"cached_tokens":3}}}}`))
	f.Add(401, []byte(`{"error":{"type":"invalid_request_error","code":"invalid_api_key"}}`))
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		p := New()
		for _, v := range []provider.Request{{Variant: variantResponses}, {Variant: variantChat}, {Variant: variantChatUsage}} {
			m := p.NewRequestMeter(v)
			m.Event(nil, body)
			m.Event([]byte("response.completed"), body)
			for _, u := range []provider.Usage{m.Usage(), p.JSONUsage(body)} {
				if u.Input < 0 || u.Output < 0 || u.CacheRead < 0 || u.CacheCreation5m < 0 || u.CacheCreation1h < 0 {
					t.Fatalf("usage %+v from %q", u, body)
				}
			}
		}
		h := http.Header{"X-Ratelimit-Reset-Requests": {string(body)}, "X-Ratelimit-Remaining-Requests": {"0"}}
		fl := p.Classify(status, h, body, now)
		if fl.Mark.Kind == provider.MarkVerify && status != 401 && status != 403 {
			t.Fatalf("status %d read as a key refusal", status)
		}
		if !fl.Mark.Until.IsZero() && fl.Mark.Until.Before(now) {
			t.Fatalf("a mark that ended before now: %+v", fl)
		}
		p.ClassifyEvent(body, now)
	})
}
