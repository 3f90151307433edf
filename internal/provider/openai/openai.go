// Package openai is the OpenAI protocol for the gateway: the Responses API (Codex CLI) and
// Chat Completions, JSON and SSE. It reads client requests, builds upstream requests for
// API-key accounts, meters usage (converting OpenAI's counts, whose input includes cached
// tokens, into the gateway's buckets), classifies upstream errors and writes errors in
// OpenAI's format.
package openai

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// DefaultBaseURL is used for accounts without their own base URL.
const DefaultBaseURL = "https://api.openai.com"

// Provider implements provider.Provider for OpenAI. The zero value is ready to use.
type Provider struct{}

// New returns the OpenAI provider.
func New() *Provider { return &Provider{} }

var (
	_ provider.Provider       = (*Provider)(nil)
	_ provider.RequestStreams = (*Provider)(nil)
)

// Platform implements provider.Provider.
func (*Provider) Platform() string { return store.PlatformOpenAI }

// Client paths. Codex appends /responses to its base URL, which users write with or
// without /v1; the upstream is always asked on its /v1 path.
const (
	pathResponses = "/v1/responses"
	pathChat      = "/v1/chat/completions"
	pathModels    = "/v1/models"
)

var routes = []provider.Route{
	{Pattern: "POST " + pathResponses, Op: provider.OpMessages},
	{Pattern: "POST /responses", Op: provider.OpMessages},
	{Pattern: "POST " + pathChat, Op: provider.OpMessages},
	// Codex tries a WebSocket on the responses path before HTTP.
	{Pattern: "GET " + pathResponses, Op: provider.OpWebSocket},
	{Pattern: "GET /responses", Op: provider.OpWebSocket},
	{Pattern: "GET " + pathModels, Op: provider.OpModels},
	{Pattern: "/v1/", Op: provider.OpNotFound},
	{Pattern: "/v1", Op: provider.OpNotFound},
}

// Routes implements provider.Provider.
func (*Provider) Routes() []provider.Route { return routes }

// OpenAI's SDKs and Codex send the key as a bearer token, nowhere else.
var keyPlaces = []provider.KeyPlace{{Header: "Authorization", Scheme: "Bearer"}}

// KeyPlaces implements provider.Provider.
func (*Provider) KeyPlaces() []provider.KeyPlace { return keyPlaces }

// Request variants (provider.Request.Variant): which API the client speaks, and for chat
// streams whether the gateway asks the upstream for the usage the client did not ask for.
const (
	variantResponses = "responses"
	variantChat      = "chat"
	variantChatUsage = "chat+usage" // a chat stream whose usage chunk the client does not see
)

// isChat reports whether a client path is Chat Completions (else Responses).
func isChat(path string) bool { return path == pathChat }

// ParseRequest implements provider.Provider. Like Anthropic's, it reads the few top-level
// members it needs in one pass and refuses a body with a key twice. A previous_response_id
// makes the response it names the session; it, store and everything else go upstream as the
// client wrote them.
func (*Provider) ParseRequest(op provider.Operation, in provider.Inbound, body []byte) (provider.Request, error) {
	if op != provider.OpMessages {
		return provider.Request{}, nil
	}
	var model, stream, streamOptions, cacheKey, previous, instructions, messages, input gjson.Result
	err := provider.ReadObject(body, func(m provider.Member) error {
		switch m.Key {
		case "model":
			model = m.Value
		case "stream":
			stream = m.Value
		case "stream_options":
			streamOptions = m.Value
		case "prompt_cache_key":
			cacheKey = m.Value
		case "previous_response_id":
			previous = m.Value
		case "instructions":
			instructions = m.Value
		case "messages":
			messages = m.Value
		case "input":
			input = m.Value
		}
		return nil
	})
	if err != nil {
		return provider.Request{}, err
	}
	if model.Type != gjson.String {
		return provider.Request{}, errors.New("model: field required (a non-empty string)")
	}
	if err := provider.CheckModel(model.Str); err != nil {
		return provider.Request{}, err
	}
	req := provider.Request{Model: strings.Clone(model.Str), Variant: variantResponses}
	switch stream.Type {
	case gjson.True:
		req.Stream = true
	case gjson.False, gjson.Null:
	default:
		return provider.Request{}, errors.New("stream: must be a boolean")
	}
	var first, second gjson.Result
	if isChat(in.Path) {
		req.Variant = variantChat
		if req.Stream && streamOptions.Get("include_usage").Type != gjson.True {
			req.Variant = variantChatUsage
		}
		first, second = messages.Get("0"), messages.Get("1")
	} else {
		first, second = instructions, input
		if input.IsArray() {
			second = input.Get("0")
		}
	}
	if previous.Type == gjson.String && previous.Str != "" {
		// The upstream keeps the response continued with the account that produced it: the
		// request goes where that response's binding (AnswerSession) points.
		req.Session, req.Continues = responseSession(previous.Str), true
		return req, nil
	}
	req.Session = sessionOf(in.Header, cacheKey, first, second)
	return req, nil
}

// responseSession is the sticky session of a request continuing response id.
func responseSession(id string) string { return hashSession("r:", id) }

// storedSession is the session of a later request continuing response r, "" when the
// upstream does not keep it (the client asked for store false) or it has no id.
func storedSession(r gjson.Result) string {
	id := r.Get("id")
	if id.Type != gjson.String || id.Str == "" || r.Get("store").Type == gjson.False {
		return ""
	}
	return responseSession(id.Str)
}

// AnswerSession implements provider.Continuations: a Responses answer is continued by
// previous_response_id; a chat completion never is.
func (*Provider) AnswerSession(req provider.Request, body []byte) string {
	if req.Variant != variantResponses {
		return ""
	}
	return storedSession(gjson.ParseBytes(body))
}

// sessionOf derives the sticky-session identity of a request: Codex's session header (sent
// as Session-Id by current releases, session_id by older ones), else its conversation
// header, else prompt_cache_key (Codex sets it to the session id; other clients use it for
// the same purpose: requests that share a prompt prefix), else the conversation's opening
// (instructions and first input item, or the first two chat messages), which stays the same
// for every turn. Hashed, as Anthropic's, to a fixed size without client text.
func sessionOf(h http.Header, cacheKey, first, second gjson.Result) string {
	for _, name := range []string{"Session-Id", "Session_id", "Conversation-Id", "Conversation_id"} {
		if id := strings.TrimSpace(h.Get(name)); id != "" {
			return hashSession("s:", id)
		}
	}
	if cacheKey.Type == gjson.String && cacheKey.Str != "" {
		return hashSession("k:", cacheKey.Str)
	}
	if !first.Exists() && !second.Exists() {
		return ""
	}
	return hashSession("c:", first.Raw+"\x00"+second.Raw)
}

func hashSession(prefix, s string) string {
	sum := sha256.Sum256([]byte(prefix + s))
	return hex.EncodeToString(sum[:16])
}
