// Package login onboards and keeps alive subscription logins: Claude accounts signed in
// through OAuth (PKCE), whose access tokens expire within hours and are renewed with a
// refresh token that the provider rotates on every use.
//
// A Client speaks the provider's OAuth endpoints; Flows run the sign-in (the pending state
// lives in the coordination store, so a flow started through one node finishes through
// another); a Refresher renews one account's token under a cluster-wide lock and writes the
// new token only over the one it replaced (store.UpdateCredentials' version), so that however
// many nodes notice an expiry at once, one refresh call reaches the provider.
package login

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Config locates a provider's OAuth endpoints. Every URL is configurable so that tests (and
// operators behind an egress proxy) can point them elsewhere.
type Config struct {
	AuthorizeURL string
	TokenURL     string
	ProfileURL   string
	ClientID     string
	RedirectURI  string
	// Scopes of a full login; SetupScopes of a long-lived, inference-only "setup token".
	Scopes      string
	SetupScopes string
}

// Claude is Claude Code's own OAuth client: the claude.ai authorize page, the console's token
// endpoint and the page that shows the code to paste back ("code#state").
func Claude() Config {
	return Config{
		AuthorizeURL: "https://claude.ai/oauth/authorize",
		TokenURL:     "https://console.anthropic.com/v1/oauth/token",
		ProfileURL:   "https://api.anthropic.com/api/oauth/profile",
		ClientID:     "9d1c250a-e61b-44d9-88ed-5944d1962f5e",
		RedirectURI:  "https://console.anthropic.com/oauth/code/callback",
		Scopes:       "org:create_api_key user:profile user:inference",
		SetupScopes:  "user:inference",
	}
}

// ErrInvalidGrant: the token endpoint refused the code or refresh token for good (used,
// rotated away, revoked or expired).
var ErrInvalidGrant = errors.New("invalid_grant")

// Token is what a token endpoint answered.
type Token struct {
	AccessToken  string
	RefreshToken string // "" for a setup token, or when the endpoint kept the old one
	ExpiresAt    time.Time
	Scope        string
	Email        string
	AccountID    string
	OrgID        string
}

// Client calls a provider's OAuth endpoints.
type Client struct {
	cfg  Config
	http *http.Client
	now  func() time.Time
}

// NewClient returns a client for cfg; hc nil means a client with a 20 s timeout.
func NewClient(cfg Config, hc *http.Client, now func() time.Time) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 20 * time.Second}
	}
	if now == nil {
		now = time.Now
	}
	return &Client{cfg: cfg, http: hc, now: now}
}

// Config is the client's configuration.
func (c *Client) Config() Config { return c.cfg }

// AuthURL is the page the operator opens to sign in: PKCE S256 with challenge, Claude's
// code=true (the callback page shows the code to paste).
func (c *Client) AuthURL(state, challenge string, setup bool) string {
	scopes := c.cfg.Scopes
	if setup {
		scopes = c.cfg.SetupScopes
	}
	q := url.Values{
		"code":                  {"true"},
		"client_id":             {c.cfg.ClientID},
		"response_type":         {"code"},
		"redirect_uri":          {c.cfg.RedirectURI},
		"scope":                 {scopes},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
		"state":                 {state},
	}
	return c.cfg.AuthorizeURL + "?" + q.Encode()
}

// Exchange trades an authorization code for tokens.
func (c *Client) Exchange(ctx context.Context, code, state, verifier string) (Token, error) {
	return c.token(ctx, map[string]string{
		"grant_type": "authorization_code", "code": code, "state": state, "client_id": c.cfg.ClientID,
		"redirect_uri": c.cfg.RedirectURI, "code_verifier": verifier,
	})
}

// Refresh trades a refresh token for new tokens. ErrInvalidGrant when it is dead.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (Token, error) {
	return c.token(ctx, map[string]string{
		"grant_type": "refresh_token", "refresh_token": refreshToken, "client_id": c.cfg.ClientID,
	})
}

type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	Account      struct {
		UUID  string `json:"uuid"`
		Email string `json:"email_address"`
	} `json:"account"`
	Organization struct {
		UUID string `json:"uuid"`
	} `json:"organization"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func (c *Client) token(ctx context.Context, body map[string]string) (Token, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.TokenURL, bytes.NewReader(b))
	if err != nil {
		return Token{}, fmt.Errorf("login: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	sent := c.now()
	resp, err := c.http.Do(req)
	if err != nil {
		return Token{}, fmt.Errorf("login: token endpoint: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var a tokenAnswer
	_ = json.Unmarshal(raw, &a)
	if resp.StatusCode != http.StatusOK || a.AccessToken == "" {
		if a.Error == "invalid_grant" {
			return Token{}, fmt.Errorf("login: %w: %s", ErrInvalidGrant, clip(a.Description))
		}
		msg := a.Error
		if a.Description != "" {
			msg += ": " + a.Description
		}
		if msg == "" {
			msg = clip(string(raw))
		}
		return Token{}, fmt.Errorf("login: token endpoint answered %d: %s", resp.StatusCode, clip(msg))
	}
	t := Token{AccessToken: a.AccessToken, RefreshToken: a.RefreshToken, Scope: a.Scope,
		Email: a.Account.Email, AccountID: a.Account.UUID, OrgID: a.Organization.UUID}
	if a.ExpiresIn > 0 {
		// From when the request was sent: the token may have been issued any time after.
		t.ExpiresAt = sent.Add(time.Duration(a.ExpiresIn) * time.Second).UTC()
	}
	return t, nil
}

// Profile is what the provider says about a login.
type Profile struct {
	Email string
	Plan  string // Claude's organization_type: claude_pro, claude_max, ...
}

// Profile reads the login's profile with its access token.
func (c *Client) Profile(ctx context.Context, accessToken string) (Profile, error) {
	if c.cfg.ProfileURL == "" {
		return Profile{}, errors.New("login: no profile URL configured")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.ProfileURL, nil)
	if err != nil {
		return Profile{}, fmt.Errorf("login: profile request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Anthropic-Beta", "oauth-2025-04-20")
	resp, err := c.http.Do(req)
	if err != nil {
		return Profile{}, fmt.Errorf("login: profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Profile{}, fmt.Errorf("login: profile answered %d", resp.StatusCode)
	}
	var p struct {
		Account struct {
			Email string `json:"email"`
		} `json:"account"`
		Organization struct {
			Type string `json:"organization_type"`
		} `json:"organization"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&p); err != nil {
		return Profile{}, fmt.Errorf("login: profile: %w", err)
	}
	return Profile{Email: p.Account.Email, Plan: p.Organization.Type}, nil
}

// clip bounds upstream text kept in errors (and from there in an account's error message).
func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}
