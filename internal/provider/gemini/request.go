package gemini

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// NewUpstreamRequest implements provider.Provider. The model is in the path, so a mapping
// rewrites the path and the body goes upstream exactly as the client sent it. The client's
// key (header or ?key=) was removed before; the account's key goes in x-goog-api-key.
func (p *Provider) NewUpstreamRequest(ctx context.Context, op provider.Operation, t provider.Target, in provider.Inbound, body []byte) (*http.Request, error) {
	acct := t.Account
	if isLogin(acct) {
		return p.codeAssistRequest(ctx, op, t, in, body) // a Google login: codeassist.go
	}
	version, _, method, _ := splitPath(in.Path)
	var path string
	switch op {
	case provider.OpMessages, provider.OpCountTokens:
		if method == "" {
			return nil, fmt.Errorf("gemini: no method in path %q", in.Path)
		}
		path = version + "/models/" + url.PathEscape(t.Model) + ":" + method
	case provider.OpModels:
		// Models are read under v1beta whatever the client's version: the same list, and
		// the path no other protocol shares (GET /v1/models is also OpenAI's and Anthropic's).
		path, body = versionBeta+"/models", nil
		if t.Model != "" {
			path += "/" + url.PathEscape(t.Model)
		}
	default:
		return nil, fmt.Errorf("gemini: unknown operation %v", op)
	}
	if op == provider.OpCountTokens && t.Rewrite {
		patched, err := rewriteWrappedModel(body, t.Model)
		if err != nil {
			return nil, err
		}
		body = patched
	}
	base := strings.TrimRight(acct.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	target := base + path
	if in.RawQuery != "" {
		target += "?" + in.RawQuery // alt=sse, pageSize, pageToken
	}

	httpMethod := http.MethodPost
	if op == provider.OpModels {
		httpMethod = http.MethodGet
	}
	req, err := provider.NewHTTPRequest(ctx, httpMethod, target, body)
	if err != nil {
		return nil, fmt.Errorf("gemini: build request for account %d: %w", acct.ID, err)
	}
	copyAllowed(req.Header, in.Header)
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	switch acct.Type {
	case store.AccountTypeAPIKey:
		if acct.Credentials.APIKey == "" {
			return nil, fmt.Errorf("gemini: account %d: %w (api key)", acct.ID, provider.ErrNoCredentials)
		}
		req.Header.Set("X-Goog-Api-Key", acct.Credentials.APIKey)
	default:
		return nil, fmt.Errorf("gemini: account %d: account type %q is not served", acct.ID, acct.Type)
	}
	return req, nil
}

// rewriteWrappedModel maps the model a countTokens body names again when it wraps a whole
// generate request ({"generateContentRequest":{"model":"models/…",…}}), which the API
// requires to be the model of the path. Every other byte stays as the client sent it.
func rewriteWrappedModel(body []byte, model string) ([]byte, error) {
	var inner, found *provider.Member
	err := provider.ReadObject(body, func(m provider.Member) error {
		if m.Key == "generateContentRequest" {
			inner = &m
		}
		return nil
	})
	if err != nil || inner == nil || !inner.Value.IsObject() {
		return body, nil // nothing wrapped: the model is the path's alone
	}
	_ = provider.ReadObject([]byte(inner.Value.Raw), func(m provider.Member) error {
		if m.Key == "model" {
			found = &m
		}
		return nil
	})
	if found == nil || found.Value.Type != gjson.String {
		return body, nil
	}
	found.Value.Index += inner.Value.Index // an offset in body, as ReplaceValue wants it
	out, err := provider.ReplaceValue(body, *found, "models/"+model)
	if err != nil {
		return nil, fmt.Errorf("gemini: rewrite the wrapped model: %w", err)
	}
	return out, nil
}
