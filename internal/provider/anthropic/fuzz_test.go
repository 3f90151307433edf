package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// lastWins reads the top-level members of body the way a last-key-wins upstream does
// (encoding/json into a map keeps the last copy), and reports whether a key came twice.
func lastWins(body []byte) (members map[string]json.RawMessage, dup bool, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false, false
	}
	members = map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false, false
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false, false
		}
		if _, seen := members[key]; seen {
			dup = true
		}
		members[key] = v
	}
	return members, dup, true
}

// FuzzParseRewrite: the model billed is the model served. Whatever the body, when the
// parser accepts it: no top-level key comes twice, a last-key-wins reader finds the same
// model, and rewriting it to a mapped model gives a body that parses (by both) to exactly the
// mapped model, the same stream flag and the same session. Nothing panics.
func FuzzParseRewrite(f *testing.F) {
	f.Add([]byte(`{"model":"claude-opus-5-5","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}`), "claude-haiku-5-5")
	f.Add([]byte(`{"model":"claude-haiku-5-5","model":"claude-opus-5-5"}`), "m")
	f.Add([]byte(`{"mod\u0065l":"a","x":{"model":"b"},"stream":false}`), "c\"d")
	f.Add([]byte(` {"model" : "a\u00e9\ud83d\ude00", "system":[{"text":"s"}], "metadata":{"user_id":"u_session_x"}} `), "é")
	f.Add([]byte(`{"model":"a","k":[[[[{"model":1}]]]]}`), "b")
	p := New()
	acct := apiKeyAccount()
	f.Fuzz(func(t *testing.T, body []byte, mapped string) {
		req, err := p.ParseRequest(provider.OpMessages, provider.Inbound{}, body)
		if err != nil {
			return
		}
		if utf8.Valid(body) {
			members, dup, ok := lastWins(body)
			if ok && dup {
				t.Fatalf("accepted a body with a key twice: %q", body)
			}
			var served string
			if ok && (json.Unmarshal(members["model"], &served) != nil || served != req.Model) {
				t.Fatalf("billed %q, a last-key-wins upstream serves %q: %q", req.Model, served, body)
			}
		}
		if provider.CheckModel(mapped) != nil {
			return
		}
		up, err := p.NewUpstreamRequest(context.Background(), provider.OpMessages,
			provider.Target{Account: acct, Model: mapped, Rewrite: true}, provider.Inbound{}, body)
		if err != nil {
			t.Fatalf("rewrite of an accepted body failed: %v: %q", err, body)
		}
		fwd, _ := io.ReadAll(up.Body)
		back, err := p.ParseRequest(provider.OpMessages, provider.Inbound{}, fwd)
		if err != nil || back.Model != mapped || back.Stream != req.Stream || back.Session != req.Session {
			t.Fatalf("forwarded body reads as %+v (%v), want model %q like %+v:\n%q", back, err, mapped, req, fwd)
		}
		if members, _, ok := lastWins(fwd); utf8.Valid(fwd) && ok {
			var served string
			if json.Unmarshal(members["model"], &served) != nil || served != mapped {
				t.Fatalf("a last-key-wins upstream serves %q, mapped %q:\n%q", served, mapped, fwd)
			}
		}
	})
}

// FuzzUpstreamAnswer: reading any upstream answer (an error body, an error event, a stream
// event, a JSON body) never panics, and a classification resting on a fixed text says so
// (Marker) and is only made when the message really starts with it.
func FuzzUpstreamAnswer(f *testing.F) {
	f.Add(400, []byte(`{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API."}}`), []byte("error"))
	f.Add(401, []byte(`{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`), []byte("message_start"))
	f.Add(429, []byte(`{"type":"message_delta","usage":{"output_tokens":5,"cache_creation":{"ephemeral_1h_input_tokens":3}}}`), []byte("message_delta"))
	f.Add(200, []byte(`{"message":{"usage":{"input_tokens":1e400,"cache_creation_input_tokens":-5}}}`), []byte(""))
	p := New()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body, name []byte) {
		h := http.Header{"Retry-After": {string(name)}, "Anthropic-Ratelimit-Unified-Reset": {string(name)}}
		for _, fl := range []provider.Failure{p.Classify(status, h, body, now), p.ClassifyEvent(body, now)} {
			if fl.Marker != "" && (!strings.HasPrefix(fl.Message, fl.Marker) || fl.Mark.Kind == provider.MarkNone) {
				t.Fatalf("marker %q on %+v", fl.Marker, fl)
			}
			if fl.Verdict == provider.PassThrough && fl.Mark.Kind != provider.MarkNone {
				t.Fatalf("a pass-through answer marks the account: %+v", fl)
			}
		}
		m := p.NewMeter()
		m.Event(name, body)
		m.Event(nil, body)
		_ = m.Usage()
		_ = p.JSONUsage(body)
	})
}
