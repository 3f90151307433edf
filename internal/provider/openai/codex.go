package openai

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// An OpenAI account of type oauth is a ChatGPT login (the Codex CLI's "Sign in with
// ChatGPT"). Its traffic does not go to the platform API but to the Codex backend, which
// speaks the Responses API with constraints of its own: every answer is streamed, nothing is
// stored (store false), instructions are required, input is a list, and output limits and
// sampling parameters are refused. The gateway meets them on the way up, and on the way down
// turns the stream back into one JSON response for a client that did not ask for a stream
// (codex_answer.go), so a Responses client sees the plain API whichever kind of account
// serves it. Chat Completions is not served by these accounts (Unserved): converting it
// would change what a chat client receives in ways it cannot see, so a group that must
// serve chat needs API-key accounts.

// DefaultCodexBaseURL is the upstream of ChatGPT logins without their own base URL.
const DefaultCodexBaseURL = "https://chatgpt.com"

// codexPath is the Codex backend under the base URL: {base}/backend-api/codex/responses.
const codexPath = "/backend-api/codex"

// CodexClientVersion is the Codex CLI release whose model catalogue is asked for.
const CodexClientVersion = "0.169.0"

// ExtraChatGPTAccountID is the credentials extra holding the login's ChatGPT account, sent as
// ChatGPT-Account-ID (the sign-in reads it from the id_token).
const ExtraChatGPTAccountID = "chatgpt_account_id"

// codexOriginator is sent when the client names none: the backend sees a Codex client.
const codexOriginator = "codex_cli_rs"

// codexRefused are the request members the Codex backend refuses; they are dropped.
var codexRefused = map[string]bool{"max_output_tokens": true, "max_tokens": true, "max_completion_tokens": true,
	"temperature": true, "top_p": true}

// isCodex reports whether acct is a ChatGPT login.
func isCodex(acct *store.Account) bool { return acct.Type == store.AccountTypeOAuth }

// Unserved implements provider.AccountFilter: a ChatGPT login serves only the Responses API.
func (*Provider) Unserved(acct *store.Account, op provider.Operation, req provider.Request) string {
	if isCodex(acct) && op == provider.OpMessages && req.Variant != variantResponses {
		return "ChatGPT (Codex) sign-in accounts serve only the Responses API (/v1/responses), not Chat Completions; " +
			"add an OpenAI API-key account to the group to serve /v1/chat/completions"
	}
	return ""
}

// codexBase is the account's base URL without a trailing /backend-api/codex an admin may
// have written.
func codexBase(acct *store.Account) string {
	base := strings.TrimSuffix(strings.TrimRight(acct.BaseURL, "/"), codexPath)
	if base == "" {
		base = DefaultCodexBaseURL
	}
	return base
}

// codexRequest builds the upstream request of a ChatGPT login:
//
//	responses   POST {base}/backend-api/codex/responses, always streamed
//	model list  GET  {base}/backend-api/codex/models?client_version=…
func (*Provider) codexRequest(ctx context.Context, op provider.Operation, t provider.Target, in provider.Inbound, body []byte) (*http.Request, error) {
	acct := t.Account
	cr := acct.Credentials
	if cr.AccessToken == "" {
		return nil, fmt.Errorf("openai: account %d: %w (access token)", acct.ID, provider.ErrNoCredentials)
	}
	account := cr.Extra[ExtraChatGPTAccountID]
	if account == "" {
		return nil, fmt.Errorf("openai: account %d: %w (no ChatGPT account id: sign in again)", acct.ID, provider.ErrNoCredentials)
	}
	var url string
	method := http.MethodPost
	switch {
	case op == provider.OpModels:
		url, method, body = codexBase(acct)+codexPath+"/models?client_version="+CodexClientVersion, http.MethodGet, nil
	case op == provider.OpMessages && !isChat(in.Path):
		url = codexBase(acct) + codexPath + "/responses"
		var err error
		if body, err = codexBody(body, t); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("openai: a ChatGPT login does not serve %v on %s", op, in.Path)
	}
	req, err := provider.NewHTTPRequest(ctx, method, url, body)
	if err != nil {
		return nil, fmt.Errorf("openai: build request for account %d: %w", acct.ID, err)
	}
	h := req.Header
	copyAllowed(h, in.Header) // Codex's session, turn and identity headers go up as they came
	if body != nil {
		h.Set("Content-Type", "application/json")
		h.Set("Accept", "text/event-stream")
	}
	if h.Get("Originator") == "" {
		h.Set("Originator", codexOriginator)
	}
	h.Set("Authorization", "Bearer "+cr.AccessToken)
	h.Set("ChatGPT-Account-ID", account)
	return req, nil
}

// codexBody meets the Codex backend's constraints, every other member kept as the client
// wrote it, in its order: stream true, store false, instructions ("" when absent), input as
// a list (a string input becomes one user message), the refused members dropped, and the
// account's model mapping.
func codexBody(body []byte, t provider.Target) ([]byte, error) {
	type member struct {
		key string
		raw []byte
	}
	var members []member
	err := provider.ReadObject(body, func(m provider.Member) error {
		if !codexRefused[m.Key] {
			members = append(members, member{m.Key, []byte(m.Value.Raw)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("openai: codex body: %w", err)
	}
	set := func(key string, raw []byte) {
		for i := range members {
			if members[i].key == key {
				members[i].raw = raw
				return
			}
		}
		members = append(members, member{key, raw})
	}
	find := func(key string) gjson.Result {
		for _, m := range members {
			if m.key == key {
				return gjson.ParseBytes(m.raw)
			}
		}
		return gjson.Result{}
	}
	if t.Rewrite {
		set("model", quote(t.Model))
	}
	set("stream", []byte("true"))
	set("store", []byte("false"))
	if in := find("instructions"); !in.Exists() || in.Type == gjson.Null {
		set("instructions", []byte(`""`))
	}
	if in := find("input"); in.Type == gjson.String {
		msg, _ := json.Marshal([]any{map[string]any{"type": "message", "role": "user",
			"content": []any{map[string]string{"type": "input_text", "text": in.Str}}}})
		set("input", msg)
	}
	out := make([]byte, 0, len(body)+64)
	out = append(out, '{')
	for i, m := range members {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, quote(m.key)...)
		out = append(out, ':')
		out = append(out, m.raw...)
	}
	return append(out, '}'), nil
}
