package gemini

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// A Gemini account of type oauth is a Google login (Gemini CLI's "Login with Google"). Its
// traffic does not go to the Gemini API but to Code Assist, which takes the same generate
// request wrapped in an envelope naming the model and the login's Cloud project, and
// answers each response wrapped in {"response":…}. The gateway wraps on the way up and
// unwraps on the way down (codeassist_answer.go), so a Gemini client sees the plain Gemini
// API whichever kind of account serves it.

// DefaultCodeAssistURL is the upstream of Google logins without their own base URL.
const DefaultCodeAssistURL = "https://cloudcode-pa.googleapis.com"

// codeAssistVersion is the API version of Code Assist's methods: POST {base}/v1internal:{method}.
const codeAssistVersion = "/v1internal"

// Code Assist methods besides the generate ones.
const (
	MethodLoadCodeAssist = "loadCodeAssist"
	MethodOnboardUser    = "onboardUser"
)

// Keys of a Google login's Credentials.Extra.
const (
	// ExtraProject is the Cloud project Code Assist bills the login's requests to, found or
	// created when the login was onboarded: every request names it.
	ExtraProject = "project_id"
	ExtraEmail   = "email"
	ExtraTier    = "tier" // the Code Assist tier: free-tier, standard-tier, legacy-tier
)

// CodeAssistModels are the models a Google login serves, listed for a group whose accounts
// have no model mapping: Code Assist has no model list to ask (an operator who wants
// another list sets the accounts' mappings).
var CodeAssistModels = []string{"gemini-3.1-pro-preview", "gemini-3.8-flash", "gemini-3.5-flash-lite"}

// CodeAssistURL is the URL of a Code Assist method for a login whose base URL is base
// ("" for the default).
func CodeAssistURL(base, method string) string {
	base = strings.TrimRight(base, "/")
	if base == "" {
		base = DefaultCodeAssistURL
	}
	return base + codeAssistVersion + ":" + method
}

// LoadCodeAssistBody is loadCodeAssist's request as Gemini CLI sends it: the project the
// login already has ("" when none yet) and the client's metadata.
func LoadCodeAssistBody(project string) []byte {
	type metadata struct {
		IDEType     string `json:"ideType"`
		Platform    string `json:"platform"`
		PluginType  string `json:"pluginType"`
		DuetProject string `json:"duetProject,omitempty"`
	}
	b, _ := json.Marshal(struct {
		Project  string   `json:"cloudaicompanionProject,omitempty"`
		Metadata metadata `json:"metadata"`
	}{project, metadata{"IDE_UNSPECIFIED", "PLATFORM_UNSPECIFIED", "GEMINI", project}})
	return b
}

// codeAssistRequest builds the upstream request of a Google login:
//
//	generateContent        POST …/v1internal:generateContent
//	streamGenerateContent  POST …/v1internal:streamGenerateContent?alt=sse (always SSE: an
//	                       array stream is rebuilt from it on the way down)
//	countTokens            POST …/v1internal:countTokens {"request":{"model","contents"}}
//	model list             POST …/v1internal:loadCodeAssist: Code Assist lists no models,
//	                       so the call only proves the login works (the gateway's check of
//	                       refused credentials) and the list is CodeAssistModels
func (*Provider) codeAssistRequest(ctx context.Context, op provider.Operation, t provider.Target, in provider.Inbound, body []byte) (*http.Request, error) {
	acct := t.Account
	cr := acct.Credentials
	if cr.AccessToken == "" {
		return nil, fmt.Errorf("gemini: account %d: %w (access token)", acct.ID, provider.ErrNoCredentials)
	}
	project := cr.Extra[ExtraProject]
	if project == "" {
		return nil, fmt.Errorf("gemini: account %d: %w (no Code Assist project: sign in again)", acct.ID, provider.ErrNoCredentials)
	}
	_, _, method, _ := splitPath(in.Path)
	var query string
	var err error
	switch op {
	case provider.OpMessages:
		switch method {
		case methodGenerate:
		case methodStream:
			query = "?alt=sse"
		default:
			return nil, fmt.Errorf("gemini: no generate method in path %q", in.Path)
		}
		body, err = wrapGenerate(body, t.Model, project)
	case provider.OpCountTokens:
		method = methodCount
		body, err = wrapCount(body, t.Model)
	case provider.OpModels:
		method, body = MethodLoadCodeAssist, LoadCodeAssistBody(project)
	default:
		return nil, fmt.Errorf("gemini: unknown operation %v", op)
	}
	if err != nil {
		return nil, err
	}
	req, err := provider.NewHTTPRequest(ctx, http.MethodPost, CodeAssistURL(acct.BaseURL, method)+query, body)
	if err != nil {
		return nil, fmt.Errorf("gemini: build request for account %d: %w", acct.ID, err)
	}
	copyAllowed(req.Header, in.Header) // the SDK's and CLI's own headers go up as they came
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+cr.AccessToken)
	return req, nil
}

// wrapGenerate puts a client's generate request into Code Assist's envelope, as Gemini CLI
// does: {"model","project","user_prompt_id","request":{…,"session_id"}}. The client's body
// goes in as it came; a session_id (the conversation's sticky identity, which carries no
// client text) is added when it has none.
func wrapGenerate(body []byte, model, project string) ([]byte, error) {
	members, hasSession := 0, false
	var sp sessionParts
	err := provider.ReadObject(body, func(m provider.Member) error {
		members++
		hasSession = hasSession || m.Key == "session_id"
		sp.read(m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gemini: wrap the request: %w", err)
	}
	inner := body
	if session := sp.session(); !hasSession && session != "" {
		end := bytes.LastIndexByte(body, '}') // ReadObject found one object: its last byte
		inner = make([]byte, 0, len(body)+len(session)+16)
		inner = append(inner, body[:end]...)
		if members > 0 {
			inner = append(inner, ',')
		}
		inner = append(inner, `"session_id":"`...)
		inner = append(inner, session...)
		inner = append(inner, '"')
		inner = append(inner, body[end:]...)
	}
	return envelope(model, project, inner), nil
}

// envelope renders {"model":…,"project":…,"user_prompt_id":…,"request":inner}.
func envelope(model, project string, inner []byte) []byte {
	m, _ := json.Marshal(model)
	p, _ := json.Marshal(project)
	out := make([]byte, 0, len(inner)+len(m)+len(p)+96)
	out = append(out, `{"model":`...)
	out = append(out, m...)
	out = append(out, `,"project":`...)
	out = append(out, p...)
	// The CLI names each prompt; the id ties the upstream's logs of one request together.
	out = append(out, `,"user_prompt_id":"`...)
	out = append(out, strings.ToLower(rand.Text())...)
	out = append(out, `","request":`...)
	out = append(out, inner...)
	return append(out, '}')
}

// wrapCount turns a countTokens body ({"contents"} or {"generateContentRequest":{…}}) into
// Code Assist's {"request":{"model":"models/…","contents":[…]}}.
func wrapCount(body []byte, model string) ([]byte, error) {
	var contents, wrapped provider.Member
	err := provider.ReadObject(body, func(m provider.Member) error {
		switch m.Key {
		case "contents":
			contents = m
		case "generateContentRequest":
			wrapped = m
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("gemini: wrap the count: %w", err)
	}
	raw := contents.Value.Raw
	if raw == "" {
		raw = wrapped.Value.Get("contents").Raw
	}
	if raw == "" {
		raw = "[]"
	}
	m, _ := json.Marshal("models/" + model)
	out := make([]byte, 0, len(raw)+len(m)+40)
	out = append(out, `{"request":{"model":`...)
	out = append(out, m...)
	out = append(out, `,"contents":`...)
	out = append(out, raw...)
	return append(out, "}}"...), nil
}

// isLogin reports whether the account is a Google login, served through Code Assist.
func isLogin(a *store.Account) bool { return a != nil && a.Type == store.AccountTypeOAuth }
