// Package gemini is the Gemini API (Generative Language API) protocol for the gateway:
// reading client requests, whose model and method are in the path
// (POST /v1beta/models/{model}:generateContent), building upstream requests for API-key
// accounts, metering usage from JSON, JSON-array and SSE answers, classifying upstream
// errors and writing errors in Google's shape ({"error":{"code","message","status"}}).
package gemini

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// DefaultBaseURL is used for accounts without their own base URL.
const DefaultBaseURL = "https://generativelanguage.googleapis.com"

// Provider implements provider.Provider for Gemini. The zero value is ready to use.
type Provider struct{}

// New returns the Gemini provider.
func New() *Provider { return &Provider{} }

var (
	_ provider.Provider    = (*Provider)(nil)
	_ provider.ModelWriter = (*Provider)(nil)
)

// Platform implements provider.Provider.
func (*Provider) Platform() string { return store.PlatformGemini }

// The methods of a model, named after a colon in the path.
const (
	methodGenerate = "generateContent"
	methodStream   = "streamGenerateContent"
	methodCount    = "countTokens"
)

// The API versions served: the Gemini CLI (JS SDK) calls v1beta, the Go SDK v1. A request
// goes upstream under the version it came with; the gateway's own calls use v1beta.
const (
	versionBeta = "/v1beta"
	versionOne  = "/v1"
)

var routes = []provider.Route{
	{Pattern: "POST " + versionBeta + "/models/{rest...}", OpOf: postOp},
	{Pattern: "GET " + versionBeta + "/models", Op: provider.OpModels},
	{Pattern: "GET " + versionBeta + "/models/{rest...}", OpOf: getOp},
	// GET /v1/models is shared with the other protocols: the key's group chooses.
	{Pattern: "POST " + versionOne + "/models/{rest...}", OpOf: postOp},
	{Pattern: "GET " + versionOne + "/models", Op: provider.OpModels},
	{Pattern: "GET " + versionOne + "/models/{rest...}", OpOf: getOp},
	// Anything else under /v1beta gets a 404 in Google's shape (/v1 has its owners).
	{Pattern: versionBeta + "/", Op: provider.OpNotFound},
	{Pattern: versionBeta, Op: provider.OpNotFound},
}

// Routes implements provider.Provider. A ServeMux pattern cannot split
// "gemini-3.8-flash:generateContent", so one pattern per HTTP method takes every model path
// and the operation is read from the method after the colon.
func (*Provider) Routes() []provider.Route { return routes }

// splitPath returns the API version, the model and the method of a model path
// ("/v1beta/models/gemini-3.8-flash:generateContent"); ok is false for any other path.
func splitPath(path string) (version, model, method string, ok bool) {
	for _, v := range []string{versionBeta, versionOne} {
		if rest, found := strings.CutPrefix(path, v+"/models/"); found {
			model, method, _ = strings.Cut(rest, ":")
			return v, model, method, true
		}
	}
	return "", "", "", false
}

func postOp(path string) provider.Operation {
	_, model, method, ok := splitPath(path)
	if !ok || model == "" {
		return provider.OpNotFound
	}
	switch method {
	case methodGenerate, methodStream:
		return provider.OpMessages
	case methodCount:
		return provider.OpCountTokens
	}
	return provider.OpNotFound
}

func getOp(path string) provider.Operation {
	if _, model, method, ok := splitPath(path); ok && method == "" && !strings.Contains(model, "/") {
		return provider.OpModels // "" lists (a trailing slash), a name describes one model
	}
	return provider.OpNotFound
}

// keyPlaces: the SDKs send x-goog-api-key, older clients and curl ?key=, and Gemini CLI
// with GEMINI_API_KEY_AUTH_MECHANISM=bearer Authorization: Bearer (beside x-goog-api-key).
var keyPlaces = []provider.KeyPlace{
	{Header: "X-Goog-Api-Key"},
	{Query: "key"},
	{Header: "Authorization", Scheme: "Bearer"},
}

// KeyPlaces implements provider.Provider.
func (*Provider) KeyPlaces() []provider.KeyPlace { return keyPlaces }

// ParseRequest implements provider.Provider. The model comes from the path; the body is only
// checked to be one JSON object (unique keys, bounded depth) and read for the session. A
// stream is an event stream only with alt=sse; without it the stream method answers one
// JSON array, relayed like a JSON answer of unknown length (an array stream: NewArrayEnd).
func (*Provider) ParseRequest(op provider.Operation, in provider.Inbound, body []byte) (provider.Request, error) {
	_, model, method, _ := splitPath(in.Path) // the path as the server decoded it
	if op == provider.OpModels {
		if model != "" {
			if err := provider.CheckModel(model); err != nil {
				return provider.Request{}, err
			}
		}
		return provider.Request{Model: model}, nil
	}
	if op != provider.OpMessages && op != provider.OpCountTokens {
		return provider.Request{}, nil
	}
	if err := provider.CheckModel(model); err != nil {
		return provider.Request{}, err
	}
	var sp sessionParts
	err := provider.ReadObject(body, func(m provider.Member) error {
		sp.read(m)
		return nil
	})
	if err != nil {
		return provider.Request{}, err
	}
	if op == provider.OpMessages && !sp.contents.IsArray() {
		return provider.Request{}, errors.New("contents: field required (an array of Content)")
	}
	req := provider.Request{Model: strings.Clone(model)}
	if op == provider.OpMessages {
		q, _ := url.ParseQuery(in.RawQuery)
		req.Stream = method == methodStream && q.Get("alt") == "sse"
		if method == methodStream && !req.Stream {
			req.Variant = variantArray // see NewArrayEnd
		}
		req.Session = sp.session()
	}
	return req, nil
}

// sessionParts are the members of a request body its session is derived from.
type sessionParts struct{ system, contents, cached gjson.Result }

func (sp *sessionParts) read(m provider.Member) {
	switch m.Key {
	case "systemInstruction", "system_instruction":
		sp.system = m.Value
	case "contents":
		sp.contents = m.Value
	case "cachedContent", "cached_content":
		sp.cached = m.Value
	}
}

func (sp *sessionParts) session() string {
	return sessionOf(sp.system, sp.contents.Get("0"), sp.cached)
}

// sessionOf derives the sticky-session identity of a request. Gemini CLI sends no session
// id to the Gemini API, but every turn of one conversation repeats its system instruction
// and its first content (the CLI's environment context), and a conversation on an explicit
// cache names it in cachedContent. The result is hashed: fixed size, no client text.
func sessionOf(system, first, cached gjson.Result) string {
	if cached.Type == gjson.String && cached.Str != "" {
		return hashSession("k:", cached.Str)
	}
	if !system.Exists() && !first.Exists() {
		return ""
	}
	return hashSession("c:", system.Raw+"\x00"+first.Raw)
}

func hashSession(prefix, s string) string {
	sum := sha256.Sum256([]byte(prefix + s))
	return hex.EncodeToString(sum[:16])
}

// forwardedHeaders are the client headers relayed upstream; everything else is dropped (the
// client's credentials, cookies, proxy and hop-by-hop headers, accept-encoding).
var forwardedHeaders = []string{
	"Accept",
	"Accept-Language",
	"Content-Type",
	"User-Agent",
	"X-Goog-Api-Client", // the SDK and its version
	"X-Server-Timeout",  // the SDK's deadline, which the API honours
}

// responseHeaders are the upstream response headers a client sees.
var responseHeaders = []string{"Content-Type", "Retry-After"}

// ResponseHeaders implements provider.Provider.
func (*Provider) ResponseHeaders() []string { return responseHeaders }

func copyAllowed(dst, src http.Header) {
	for _, name := range forwardedHeaders {
		if v, ok := src[name]; ok {
			dst[name] = append([]string(nil), v...)
		}
	}
}
