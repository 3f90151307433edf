package anthropic

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Version is sent when the client named none; the API requires the header.
const Version = "2023-06-01"

// Beta names a subscription (OAuth) token needs: the API refuses such a token without them.
const (
	betaOAuth      = "oauth-2025-04-20"
	betaClaudeCode = "claude-code-20250219"
)

// oauthUserAgent is sent for subscription accounts when the client is not Claude Code:
// subscription tokens are only accepted from Claude Code's identity.
const oauthUserAgent = "claude-cli/2.1.332 (external, cli)"

// forwardedHeaders are the client headers relayed upstream. Everything else is dropped: the
// client's credentials (authorization, x-api-key), cookies, hop-by-hop and proxy headers,
// accept-encoding (the transport negotiates its own) and anything we do not know.
// Claude Code's own identity headers are kept so an account sees the client it serves.
var forwardedHeaders = []string{
	"Accept",
	"Accept-Language",
	"Anthropic-Beta",
	"Anthropic-Dangerous-Direct-Browser-Access",
	"Anthropic-Version",
	"Content-Type",
	"User-Agent",
	"X-App",
	"X-Claude-Code-Session-Id",
}

// forwardedPrefix: the Stainless SDK headers (x-stainless-lang, -os, -arch, -runtime,
// -package-version, -retry-count, -timeout, ...) describe the client, never its credentials.
const forwardedPrefix = "X-Stainless-"

var opPaths = map[provider.Operation]string{
	provider.OpMessages:    "/v1/messages",
	provider.OpCountTokens: "/v1/messages/count_tokens",
	provider.OpModels:      "/v1/models",
}

// NewUpstreamRequest implements provider.Provider.
func (*Provider) NewUpstreamRequest(ctx context.Context, op provider.Operation, t provider.Target, in provider.Inbound, body []byte) (*http.Request, error) {
	acct := t.Account
	path, ok := opPaths[op]
	if !ok {
		return nil, fmt.Errorf("anthropic: unknown operation %v", op)
	}
	base := strings.TrimRight(acct.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	url := base + path
	if in.RawQuery != "" {
		url += "?" + in.RawQuery // Claude Code's ?beta=true goes where it would have gone
	}

	method := http.MethodPost
	if op == provider.OpModels {
		method, body = http.MethodGet, nil
	}
	if t.Rewrite && body != nil {
		patched, err := rewriteModel(body, t.Model)
		if err != nil {
			return nil, err
		}
		body = patched
	}
	req, err := provider.NewHTTPRequest(ctx, method, url, body)
	if err != nil {
		return nil, fmt.Errorf("anthropic: build request for account %d: %w", acct.ID, err)
	}

	h := req.Header
	copyAllowed(h, in.Header)
	if h.Get("Anthropic-Version") == "" {
		h.Set("Anthropic-Version", Version)
	}
	if body != nil && h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	if err := setCredentials(h, acct); err != nil {
		return nil, err
	}
	return req, nil
}

// rewriteModel replaces the value of the one top-level "model" member, found the same way
// ParseRequest found the model it billed, and leaves every other byte of the body as the
// client sent it. (A path-based patch could miss a key spelt with escapes and add a second
// "model" member instead, which the upstream would read as the client's.)
func rewriteModel(body []byte, model string) ([]byte, error) {
	var found *provider.Member
	err := provider.ReadObject(body, func(m provider.Member) error {
		if m.Key == "model" {
			found = &m
		}
		return nil
	})
	if err == nil && found == nil {
		err = errors.New("no model member")
	}
	if err != nil {
		return nil, fmt.Errorf("anthropic: rewrite model: %w", err)
	}
	return provider.ReplaceValue(body, *found, model)
}

func copyAllowed(dst, src http.Header) {
	for _, name := range forwardedHeaders {
		if v, ok := src[name]; ok {
			dst[name] = append([]string(nil), v...)
		}
	}
	for name, v := range src {
		if strings.HasPrefix(name, forwardedPrefix) {
			dst[name] = append([]string(nil), v...)
		}
	}
}

// ErrNoCredentials means an account has no usable secret for its type.
var ErrNoCredentials = provider.ErrNoCredentials

func setCredentials(h http.Header, acct *store.Account) error {
	switch acct.Type {
	case store.AccountTypeAPIKey:
		if acct.Credentials.APIKey == "" {
			return fmt.Errorf("anthropic: account %d: %w (api key)", acct.ID, ErrNoCredentials)
		}
		h.Set("X-Api-Key", acct.Credentials.APIKey)
	case store.AccountTypeOAuth:
		if acct.Credentials.AccessToken == "" {
			return fmt.Errorf("anthropic: account %d: %w (access token)", acct.ID, ErrNoCredentials)
		}
		h.Set("Authorization", "Bearer "+acct.Credentials.AccessToken)
		h.Set("Anthropic-Beta", oauthBetas(h.Get("Anthropic-Beta")))
		if !strings.HasPrefix(h.Get("User-Agent"), "claude-cli/") {
			h.Set("User-Agent", oauthUserAgent)
		}
		h.Set("X-App", "cli")
	default:
		return fmt.Errorf("anthropic: account %d: unknown account type %q", acct.ID, acct.Type)
	}
	return nil
}

// oauthBetas merges the betas a subscription token needs into the client's list, keeping the
// client's order: claude-code first if it was missing, oauth right after claude-code.
func oauthBetas(client string) string {
	var out []string
	hasCC, hasOAuth := false, false
	for _, b := range strings.Split(client, ",") {
		b = strings.TrimSpace(b)
		switch b {
		case "":
			continue
		case betaClaudeCode:
			hasCC = true
		case betaOAuth:
			hasOAuth = true
		}
		out = append(out, b)
	}
	if !hasCC {
		out = append([]string{betaClaudeCode}, out...)
	}
	if !hasOAuth {
		for i, b := range out {
			if b == betaClaudeCode {
				out = append(out[:i+1], append([]string{betaOAuth}, out[i+1:]...)...)
				break
			}
		}
	}
	return strings.Join(out, ",")
}

// responseHeaders are the upstream response headers a client sees. The account's rate-limit
// and organization headers stay private: they describe the pool, not the client's key.
var responseHeaders = []string{"Content-Type", "Request-Id", "Retry-After"}

// ResponseHeaders implements provider.Provider.
func (*Provider) ResponseHeaders() []string { return responseHeaders }
