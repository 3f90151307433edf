package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Account extras (store.Credentials.Extra) sent as OpenAI's organization and project
// headers: an API key that belongs to several organizations or projects bills the one named.
const (
	ExtraOrganization = "organization"
	ExtraProject      = "project"
)

// forwardedHeaders are the client headers relayed upstream. Everything else is dropped: the
// client's credentials, its own organization and project (the account's are sent), cookies,
// hop-by-hop headers (a WebSocket upgrade's included) and anything unknown. Codex's identity
// and session headers are kept so the account sees the client it serves.
var forwardedHeaders = []string{
	"Accept",
	"Accept-Language",
	"Content-Type",
	"User-Agent",
	"Idempotency-Key",
	"Openai-Beta",
	"Originator",
	"Session-Id",
	"Session_id",
	"Conversation-Id",
	"Conversation_id",
	"Thread-Id",
	"X-Client-Request-Id",
}

// forwardedPrefixes: the Stainless SDK headers describe the client; Codex's x-codex-* carry
// its turn metadata and features. Neither holds a credential.
var forwardedPrefixes = []string{"X-Stainless-", "X-Codex-"}

// NewUpstreamRequest implements provider.Provider. The body changes in at most two places,
// every other byte as the client sent it: the model (the account's mapping), and for a chat
// stream whose client did not ask for usage, stream_options.include_usage (without it the
// stream reports no usage at all; the meter keeps the extra chunk from the client).
func (p *Provider) NewUpstreamRequest(ctx context.Context, op provider.Operation, t provider.Target, in provider.Inbound, body []byte) (*http.Request, error) {
	acct := t.Account
	if isCodex(acct) {
		return p.codexRequest(ctx, op, t, in, body)
	}
	var path string
	method := http.MethodPost
	switch {
	case op == provider.OpModels:
		path, method, body = pathModels, http.MethodGet, nil
	case op == provider.OpMessages && isChat(in.Path):
		path = pathChat
	case op == provider.OpMessages:
		path = pathResponses
	default:
		return nil, fmt.Errorf("openai: unknown operation %v", op)
	}
	base := strings.TrimSuffix(strings.TrimRight(acct.BaseURL, "/"), "/v1")
	if base == "" {
		base = DefaultBaseURL
	}
	url := base + path
	if in.RawQuery != "" {
		url += "?" + in.RawQuery
	}
	if body != nil {
		patched, err := patchBody(body, t, isChat(in.Path))
		if err != nil {
			return nil, err
		}
		body = patched
	}
	req, err := provider.NewHTTPRequest(ctx, method, url, body)
	if err != nil {
		return nil, fmt.Errorf("openai: build request for account %d: %w", acct.ID, err)
	}
	h := req.Header
	copyAllowed(h, in.Header)
	if body != nil && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	if err := setCredentials(h, acct); err != nil {
		return nil, err
	}
	return req, nil
}

// patchBody applies the model mapping and, for chat streams, asks for usage. It finds the
// members the way ParseRequest did, so an escaped key spelling is the member replaced, never
// a second one added.
func patchBody(body []byte, t provider.Target, chat bool) ([]byte, error) {
	var model, stream, options *provider.Member
	err := provider.ReadObject(body, func(m provider.Member) error {
		switch m.Key {
		case "model":
			model = &m
		case "stream":
			stream = &m
		case "stream_options":
			options = &m
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("openai: patch body: %w", err)
	}
	var edits []edit
	if t.Rewrite {
		if model == nil {
			return nil, fmt.Errorf("openai: rewrite model: no model member")
		}
		edits = append(edits, replace(*model, quote(t.Model)))
	}
	if chat && stream != nil && stream.Value.Type == gjson.True {
		switch {
		case options == nil:
			end := bytes.LastIndexByte(body, '}')
			edits = append(edits, edit{at: end, end: end, text: []byte(`,"stream_options":{"include_usage":true}`)})
		case options.Value.Get("include_usage").Type == gjson.True:
		case options.Value.IsObject():
			edits = append(edits, replace(*options, withUsage(options.Value)))
		case options.Value.Type == gjson.Null:
			edits = append(edits, replace(*options, []byte(`{"include_usage":true}`)))
		}
		// Any other stream_options is the client's error; the upstream says so.
	}
	return applyEdits(body, edits), nil
}

// edit replaces body[at:end] with text.
type edit struct {
	at, end int
	text    []byte
}

func replace(m provider.Member, text []byte) edit {
	return edit{at: m.Value.Index, end: m.Value.Index + len(m.Value.Raw), text: text}
}

func quote(s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// withUsage is a stream_options object with include_usage true and its other members kept.
func withUsage(opts gjson.Result) []byte {
	out := []byte{'{'}
	opts.ForEach(func(k, v gjson.Result) bool {
		if k.Str != "include_usage" {
			out = append(out, k.Raw...)
			out = append(out, ':')
			out = append(out, v.Raw...)
			out = append(out, ',')
		}
		return true
	})
	return append(out, `"include_usage":true}`...)
}

// applyEdits applies non-overlapping edits, in any order, in one copy of body.
func applyEdits(body []byte, edits []edit) []byte {
	if len(edits) == 0 {
		return body
	}
	slices.SortFunc(edits, func(a, b edit) int { return a.at - b.at })
	out := make([]byte, 0, len(body)+64)
	prev := 0
	for _, e := range edits {
		out = append(out, body[prev:e.at]...)
		out = append(out, e.text...)
		prev = e.end
	}
	return append(out, body[prev:]...)
}

func copyAllowed(dst, src http.Header) {
	for _, name := range forwardedHeaders {
		if v, ok := src[name]; ok {
			dst[name] = append([]string(nil), v...)
		}
	}
	for name, v := range src {
		for _, prefix := range forwardedPrefixes {
			if strings.HasPrefix(name, prefix) {
				dst[name] = append([]string(nil), v...)
			}
		}
	}
}

func setCredentials(h http.Header, acct *store.Account) error {
	if acct.Type != store.AccountTypeAPIKey {
		return fmt.Errorf("openai: account %d: %w (type %q)", acct.ID, provider.ErrNoCredentials, acct.Type)
	}
	if acct.Credentials.APIKey == "" {
		return fmt.Errorf("openai: account %d: %w (api key)", acct.ID, provider.ErrNoCredentials)
	}
	h.Set("Authorization", "Bearer "+acct.Credentials.APIKey)
	if v := acct.Credentials.Extra[ExtraOrganization]; v != "" {
		h.Set("OpenAI-Organization", v)
	}
	if v := acct.Credentials.Extra[ExtraProject]; v != "" {
		h.Set("OpenAI-Project", v)
	}
	return nil
}

// responseHeaders are the upstream response headers a client sees. The account's
// organization, processing time and x-ratelimit-* stay private: they describe the pool.
var responseHeaders = []string{"Content-Type", "X-Request-Id", "Retry-After"}

// ResponseHeaders implements provider.Provider.
func (*Provider) ResponseHeaders() []string { return responseHeaders }
