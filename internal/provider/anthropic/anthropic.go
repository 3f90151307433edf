// Package anthropic is the Anthropic Messages protocol for the gateway: reading client
// requests, building upstream requests for API-key and subscription (OAuth) accounts,
// metering usage from JSON and SSE responses, classifying upstream errors and writing errors
// in Anthropic's format.
package anthropic

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
const DefaultBaseURL = "https://api.anthropic.com"

// Provider implements provider.Provider for Anthropic. The zero value is ready to use.
type Provider struct{}

// New returns the Anthropic provider.
func New() *Provider { return &Provider{} }

var _ provider.Provider = (*Provider)(nil)

// Platform implements provider.Provider.
func (*Provider) Platform() string { return store.PlatformAnthropic }

var routes = []provider.Route{
	{Pattern: "POST /v1/messages", Op: provider.OpMessages},
	{Pattern: "POST /v1/messages/count_tokens", Op: provider.OpCountTokens},
	{Pattern: "GET /v1/models", Op: provider.OpModels},
	// Anything else under /v1 gets a 404 the SDKs can parse.
	{Pattern: "/v1/", Op: provider.OpNotFound},
	{Pattern: "/v1", Op: provider.OpNotFound},
}

// Routes implements provider.Provider. The query string (Claude Code's ?beta=true) plays no
// part in routing; it is passed upstream as it came.
func (*Provider) Routes() []provider.Route { return routes }

// keyPlaces: the SDKs send x-api-key; Claude Code with an auth token, and most other
// clients, send Authorization: Bearer.
var keyPlaces = []provider.KeyPlace{
	{Header: "X-Api-Key"},
	{Header: "Authorization", Scheme: "Bearer"},
}

// KeyPlaces implements provider.Provider.
func (*Provider) KeyPlaces() []provider.KeyPlace { return keyPlaces }

// ParseRequest implements provider.Provider. It reads model, stream and the session in one
// pass over the top-level members, without decoding the rest: Claude Code bodies are ~50 KB
// of tools and prompts we never need. A body with a top-level key twice is refused
// (provider.ReadObject says why).
func (*Provider) ParseRequest(op provider.Operation, in provider.Inbound, body []byte) (provider.Request, error) {
	if op != provider.OpMessages && op != provider.OpCountTokens {
		return provider.Request{}, nil
	}
	var model, stream, system, messages, metadata gjson.Result
	err := provider.ReadObject(body, func(m provider.Member) error {
		switch m.Key {
		case "model":
			model = m.Value
		case "stream":
			stream = m.Value
		case "system":
			system = m.Value
		case "messages":
			messages = m.Value
		case "metadata":
			metadata = m.Value
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
	req := provider.Request{Model: strings.Clone(model.Str)}
	if op == provider.OpMessages {
		switch stream.Type {
		case gjson.True:
			req.Stream = true
		case gjson.False, gjson.Null: // Null: absent or null
		default:
			return provider.Request{}, errors.New("stream: must be a boolean")
		}
	}
	req.Session = sessionOf(in.Header, system, messages.Get("0"), metadata.Get("user_id"))
	return req, nil
}

// sessionOf derives the sticky-session identity of a request: Claude Code's session header,
// else the session inside metadata.user_id (the JSON form Claude Code sends now, or the
// older "user_<hash>_account_<uuid>_session_<uuid>"), else the system prompt and first
// message, which stay the same for every turn of one conversation. The result is hashed so
// that sticky keys have a fixed size and carry no client text.
func sessionOf(h http.Header, system, first, uid gjson.Result) string {
	if id := strings.TrimSpace(h.Get("X-Claude-Code-Session-Id")); id != "" {
		return hashSession("s:", id)
	}
	if uid.Type == gjson.String && uid.Str != "" {
		if id := sessionFromUserID(uid.Str); id != "" {
			return hashSession("s:", id)
		}
	}
	if !system.Exists() && !first.Exists() {
		return ""
	}
	return hashSession("c:", system.Raw+"\x00"+first.Raw)
}

// sessionFromUserID returns the session id in a metadata.user_id value, or "".
func sessionFromUserID(uid string) string {
	if strings.HasPrefix(uid, "{") {
		return gjson.Get(uid, "session_id").String()
	}
	if _, after, ok := strings.Cut(uid, "_session_"); ok {
		return after
	}
	return ""
}

func hashSession(prefix, s string) string {
	sum := sha256.Sum256([]byte(prefix + s))
	return hex.EncodeToString(sum[:16])
}
