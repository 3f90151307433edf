// Package login onboards and keeps alive subscription logins: accounts signed in through a
// provider's OAuth (PKCE) — Claude, ChatGPT (Codex), Google (Gemini CLI) — whose access
// tokens expire within hours or days and are renewed with a refresh token that the provider
// may rotate on every use.
//
// A Config describes one provider's OAuth; a Client speaks its endpoints; Flows run the
// sign-in (the pending state lives in the coordination store, so a flow started through one
// node finishes through another); a Refresher renews one account's token under a
// cluster-wide lock and writes the new token only over the one it replaced
// (store.UpdateCredentials' version), so that however many nodes notice an expiry at once,
// one refresh call reaches the provider.
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

// Config describes one provider's OAuth. Every URL is configurable so that tests (and
// operators behind an egress proxy) can point them elsewhere.
type Config struct {
	// Name is the provider's name in the admin routes (/admin/logins/{Name}/start).
	Name string
	// Platform is the platform of the accounts its logins become (store.Platform*).
	Platform     string
	AuthorizeURL string
	TokenURL     string
	ProfileURL   string // "" when the provider has none (the token answer says it all)
	ClientID     string
	// ClientSecret is sent with token requests when set (Google's installed-app clients
	// have a public one).
	ClientSecret string
	RedirectURI  string
	// Scopes of a full login; SetupScopes of a long-lived, inference-only "setup token"
	// ("" when the provider has no such kind).
	Scopes      string
	SetupScopes string
	// RefreshScope is sent as scope with a refresh grant when set.
	RefreshScope string
	// AuthParams are added to the authorize URL (Claude's code=true, OpenAI's
	// id_token_add_organizations, Google's access_type=offline).
	AuthParams url.Values
	// FormTokenRequests sends token requests as application/x-www-form-urlencoded, as
	// OAuth's RFC does (OpenAI, Google); false sends JSON (Claude).
	FormTokenRequests bool
	// StateInExchange sends the state with the code exchange (Claude's endpoint wants it).
	StateInExchange bool
	// Identify reads who the login is from a token answer (raw is its JSON body): Claude's
	// account object, OpenAI's id_token claims. Called for exchanges and refreshes; nil: none.
	Identify func(raw []byte, t *Token) error
	// Discover runs once after a sign-in's code exchange, before the account is stored:
	// reading the profile, or a provider's onboarding (Google's Code Assist project). It
	// may fill t's Email, Plan and Extra. An error fails the sign-in; nil: nothing to do.
	Discover func(ctx context.Context, c *Client, t *Token) error
}

// Kinds of login.
const (
	KindOAuth = "oauth" // a full login: access token + (rotating) refresh token
	// KindSetupToken is Claude's long-lived, inference-only token (a year, no refresh token).
	KindSetupToken = "setup_token"
)

// Kinds lists the kinds of login the provider offers.
func (c Config) Kinds() []string {
	if c.SetupScopes != "" {
		return []string{KindOAuth, KindSetupToken}
	}
	return []string{KindOAuth}
}

// ErrInvalidGrant: the token endpoint refused the code or refresh token for good (used,
// rotated away, revoked or expired).
var ErrInvalidGrant = errors.New("invalid_grant")

// Token is what a token endpoint answered, plus what Identify and Discover learnt.
type Token struct {
	AccessToken  string
	RefreshToken string // "" for a setup token, or when the endpoint kept the old one
	IDToken      string // OpenID Connect providers
	ExpiresAt    time.Time
	Scope        string
	Email        string
	Plan         string
	AccountID    string
	OrgID        string
	// Extra is stored in the account's credentials' extra values (ChatGPT's account id,
	// Google's project); the request path reads them.
	Extra map[string]string
}

// SetExtra records a credentials extra value, skipping empty ones.
func (t *Token) SetExtra(k, v string) {
	if v == "" {
		return
	}
	if t.Extra == nil {
		t.Extra = map[string]string{}
	}
	t.Extra[k] = v
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

// HTTP is the client's HTTP client, for Discover hooks.
func (c *Client) HTTP() *http.Client { return c.http }

// AuthURL is the page the operator opens to sign in: PKCE S256 with challenge.
func (c *Client) AuthURL(state, challenge string, setup bool) string {
	scopes := c.cfg.Scopes
	if setup {
		scopes = c.cfg.SetupScopes
	}
	q := url.Values{}
	for k, v := range c.cfg.AuthParams {
		q[k] = v
	}
	q.Set("client_id", c.cfg.ClientID)
	q.Set("response_type", "code")
	q.Set("redirect_uri", c.cfg.RedirectURI)
	q.Set("scope", scopes)
	q.Set("code_challenge", challenge)
	q.Set("code_challenge_method", "S256")
	q.Set("state", state)
	return c.cfg.AuthorizeURL + "?" + q.Encode()
}

// Exchange trades an authorization code for tokens.
func (c *Client) Exchange(ctx context.Context, code, state, verifier string) (Token, error) {
	body := map[string]string{"grant_type": "authorization_code", "code": code, "client_id": c.cfg.ClientID,
		"redirect_uri": c.cfg.RedirectURI, "code_verifier": verifier}
	if c.cfg.StateInExchange {
		body["state"] = state
	}
	return c.token(ctx, body)
}

// Refresh trades a refresh token for new tokens. ErrInvalidGrant when it is dead.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (Token, error) {
	body := map[string]string{"grant_type": "refresh_token", "refresh_token": refreshToken, "client_id": c.cfg.ClientID}
	if c.cfg.RefreshScope != "" {
		body["scope"] = c.cfg.RefreshScope
	}
	return c.token(ctx, body)
}

type tokenAnswer struct {
	AccessToken  string          `json:"access_token"`
	RefreshToken string          `json:"refresh_token"`
	IDToken      string          `json:"id_token"`
	ExpiresIn    int64           `json:"expires_in"`
	Scope        string          `json:"scope"`
	Error        json.RawMessage `json:"error"`
	Description  string          `json:"error_description"`
}

// refusedCodes are the token endpoints' words for a grant that is dead for good: OAuth's
// invalid_grant, and OpenAI's refresh_token_* codes (an error object, status 401).
var refusedCodes = map[string]bool{"invalid_grant": true, "refresh_token_reused": true,
	"refresh_token_expired": true, "refresh_token_invalidated": true}

// errorCode reads an OAuth error: the RFC's {"error":"code","error_description":…} or
// OpenAI's {"error":{"code","message"}}.
func (a *tokenAnswer) errorCode() (code, msg string) {
	var s string
	if json.Unmarshal(a.Error, &s) == nil {
		return s, a.Description
	}
	var o struct{ Code, Type, Message string }
	if json.Unmarshal(a.Error, &o) == nil {
		if o.Code == "" {
			o.Code = o.Type
		}
		return o.Code, o.Message
	}
	return "", ""
}

func (c *Client) token(ctx context.Context, body map[string]string) (Token, error) {
	if c.cfg.ClientSecret != "" {
		body["client_secret"] = c.cfg.ClientSecret
	}
	var payload []byte
	ctype := "application/json"
	if c.cfg.FormTokenRequests {
		f := url.Values{}
		for k, v := range body {
			f.Set(k, v)
		}
		payload, ctype = []byte(f.Encode()), "application/x-www-form-urlencoded"
	} else {
		payload, _ = json.Marshal(body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.TokenURL, bytes.NewReader(payload))
	if err != nil {
		return Token{}, fmt.Errorf("login: token request: %w", err)
	}
	req.Header.Set("Content-Type", ctype)
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
		code, desc := a.errorCode()
		if refusedCodes[code] {
			return Token{}, fmt.Errorf("login: %w: %s: %s", ErrInvalidGrant, code, clip(desc))
		}
		msg := code
		if desc != "" {
			msg += ": " + desc
		}
		if msg == "" {
			msg = clip(string(raw))
		}
		return Token{}, fmt.Errorf("login: token endpoint answered %d: %s", resp.StatusCode, clip(msg))
	}
	t := Token{AccessToken: a.AccessToken, RefreshToken: a.RefreshToken, IDToken: a.IDToken, Scope: a.Scope}
	if a.ExpiresIn > 0 {
		// From when the request was sent: the token may have been issued any time after.
		t.ExpiresAt = sent.Add(time.Duration(a.ExpiresIn) * time.Second).UTC()
	}
	if c.cfg.Identify != nil {
		if err := c.cfg.Identify(raw, &t); err != nil {
			return Token{}, fmt.Errorf("login: reading the token answer: %w", err)
		}
	}
	return t, nil
}

// Discover runs the provider's post-exchange discovery on t (nothing when it has none).
func (c *Client) Discover(ctx context.Context, t *Token) error {
	if c.cfg.Discover == nil {
		return nil
	}
	return c.cfg.Discover(ctx, c, t)
}

// clip bounds upstream text kept in errors (and from there in an account's error message).
func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}
