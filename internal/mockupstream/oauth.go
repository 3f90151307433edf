package mockupstream

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The mock's login server stands in for Claude's OAuth (claude.ai's authorize page and the
// console's token endpoint), with the paths the real ones have:
//
//	GET  /oauth/authorize     PKCE (S256) authorization: 302 to redirect_uri?code=…&state=…
//	POST /v1/oauth/token      JSON body; grant_type authorization_code (code, state,
//	                          client_id, redirect_uri, code_verifier) or refresh_token
//	                          (refresh_token, client_id)
//	GET  /api/oauth/profile   Bearer access token → {"account":{…},"organization":{…}}
//
// Refresh tokens rotate: every refresh answers a new access and refresh token and the old
// refresh token is dead, so presenting it again is invalid_grant (400
// {"error":"invalid_grant","error_description":…}). An access token stays valid until it
// expires, also after a refresh replaced it; an expired one is refused by the Anthropic
// endpoints with 401 authentication_error, as the real API refuses it. A login whose only
// scope is user:inference (Claude's long-lived "setup token") gets a one-year access token
// and no refresh token.

// Claude's OAuth facts the mock checks.
const (
	OAuthScopeInference = "user:inference"
	oauthSetupTokenTTL  = 365 * 24 * time.Hour
	// DefaultAccessTTL is how long an access token lives unless SetAccessTTL says otherwise.
	DefaultAccessTTL = 8 * time.Hour
	oauthCodeTTL     = 10 * time.Minute
)

// OAuthStats counts what the login server did.
type OAuthStats struct {
	Authorizations int64 `json:"authorizations"` // codes issued
	CodeExchanges  int64 `json:"code_exchanges"` // codes exchanged for tokens
	RefreshCalls   int64 `json:"refresh_calls"`  // refresh_token grants received
	Rotations      int64 `json:"rotations"`      // refresh_token grants answered with new tokens
	InvalidGrants  int64 `json:"invalid_grants"` // grants refused with invalid_grant
	Abandoned      int64 `json:"abandoned"`      // held refreshes whose caller left first (nothing rotated)
}

// Login is one grant the login server knows: its current tokens and who it is.
type Login struct {
	Email        string    `json:"email"`
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	ExpiresAt    time.Time `json:"expires_at"`
	// ChatGPT logins (codex_auth.go): the id_token and the ChatGPT account it names.
	IDToken   string `json:"id_token,omitempty"`
	AccountID string `json:"account_id,omitempty"`
}

type oauthCode struct {
	challenge, clientID, redirect, scope, state string
	issued                                      time.Time
}

type oauthGrant struct {
	email, scope, org string
	refresh           string // the live refresh token
	// chatgpt is set for a ChatGPT login (auth.openai.com), whose tokens are JWTs.
	chatgpt *chatgptIdentity
}

type oauthServer struct {
	mu        sync.Mutex
	accessTTL time.Duration
	codes     map[string]oauthCode
	grants    map[string]*oauthGrant // by live refresh token
	dead      map[string]string      // refresh tokens rotated away ("reused") or revoked ("revoked")
	access    map[string]time.Time   // access token → expiry
	emails    map[string]string      // access token → email
	accounts  map[string]string      // ChatGPT access token → its ChatGPT account id
	hold      chan struct{}          // non-nil: refresh grants wait until it closes
	stats     OAuthStats
}

func newOAuthServer() *oauthServer {
	return &oauthServer{accessTTL: DefaultAccessTTL, codes: map[string]oauthCode{}, grants: map[string]*oauthGrant{},
		dead: map[string]string{}, access: map[string]time.Time{}, emails: map[string]string{}, accounts: map[string]string{}}
}

func randomToken(prefix string) string { return prefix + rand.Text() }

// S256 is PKCE's code challenge of a verifier: base64url(SHA-256(verifier)), unpadded.
func S256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// issue makes a new access token (and refresh token unless setup) for g. Caller holds mu.
func (o *oauthServer) issue(g *oauthGrant, now time.Time) Login {
	ttl := o.accessTTL
	setup := g.scope == OAuthScopeInference
	if setup {
		ttl = oauthSetupTokenTTL
	}
	l := Login{Email: g.email, AccessToken: randomToken("sk-ant-oat01-"), ExpiresAt: now.Add(ttl)}
	refreshPrefix := "sk-ant-ort01-"
	if g.chatgpt != nil {
		l.AccessToken, l.IDToken = g.chatgpt.tokens(g.email, now, l.ExpiresAt)
		l.AccountID, refreshPrefix = g.chatgpt.accountID, "rt_"
		o.accounts[l.AccessToken] = l.AccountID
	}
	o.access[l.AccessToken] = l.ExpiresAt
	o.emails[l.AccessToken] = g.email
	if !setup {
		if g.refresh != "" {
			o.dead[g.refresh] = "reused"
			delete(o.grants, g.refresh)
		}
		g.refresh = randomToken(refreshPrefix)
		o.grants[g.refresh] = g
		l.RefreshToken = g.refresh
	}
	return l
}

// expired reports whether token is an access token this server issued that has expired.
func (o *oauthServer) expired(token string, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	exp, ok := o.access[token]
	return ok && !now.Before(exp)
}

// NewLogin creates a login as if its owner had just signed in (full scope), and returns its
// tokens: tests that are not about the sign-in start from here.
func (s *Server) NewLogin(email string) Login {
	o := s.oauth
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.issue(&oauthGrant{email: email, scope: "user:profile user:inference", org: "org-" + email}, s.opts.Now())
}

// SetAccessTTL sets how long access tokens issued from now on live.
func (s *Server) SetAccessTTL(d time.Duration) {
	s.oauth.mu.Lock()
	s.oauth.accessTTL = d
	s.oauth.mu.Unlock()
}

// ExpireAccess makes an access token expired at once.
func (s *Server) ExpireAccess(token string) {
	s.oauth.mu.Lock()
	if _, ok := s.oauth.access[token]; ok {
		s.oauth.access[token] = time.Time{}
	}
	s.oauth.mu.Unlock()
}

// RevokeLogin kills the login's refresh token (the owner signed out everywhere): the next
// refresh is invalid_grant for real.
func (s *Server) RevokeLogin(refreshToken string) {
	o := s.oauth
	o.mu.Lock()
	if _, ok := o.grants[refreshToken]; ok {
		delete(o.grants, refreshToken)
		o.dead[refreshToken] = "revoked"
	}
	o.mu.Unlock()
}

// HoldRefreshes makes refresh grants wait, received and counted, until ReleaseRefreshes; a
// grant whose caller leaves meanwhile rotates nothing.
func (s *Server) HoldRefreshes() {
	s.oauth.mu.Lock()
	if s.oauth.hold == nil {
		s.oauth.hold = make(chan struct{})
	}
	s.oauth.mu.Unlock()
}

// ReleaseRefreshes lets held and later refresh grants through.
func (s *Server) ReleaseRefreshes() {
	s.oauth.mu.Lock()
	if s.oauth.hold != nil {
		close(s.oauth.hold)
		s.oauth.hold = nil
	}
	s.oauth.mu.Unlock()
}

// OAuthStats returns the login server's counters.
func (s *Server) OAuthStats() OAuthStats {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	return s.oauth.stats
}

// serveOAuth answers the login server's paths; false when path is not one of them.
func (s *Server) serveOAuth(w http.ResponseWriter, r *http.Request) bool {
	switch r.URL.Path {
	case "/oauth/authorize":
		s.oauthAuthorize(w, r)
	case "/v1/oauth/token":
		s.oauthToken(w, r)
	case "/api/oauth/profile":
		s.oauthProfile(w, r)
	case "/oauth/token": // auth.openai.com's
		s.openAIToken(w, r)
	default:
		return false
	}
	return true
}

func (s *Server) oauthAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case r.Method != http.MethodGet:
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		return
	case err != nil || !redirect.IsAbs():
		oauthError(w, http.StatusBadRequest, "invalid_request", "redirect_uri must be an absolute URL")
		return
	case q.Get("response_type") != "code" || q.Get("client_id") == "" || q.Get("state") == "" || q.Get("scope") == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "response_type=code, client_id, scope and state are required")
		return
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "PKCE with code_challenge_method=S256 is required")
		return
	}
	code := rand.Text()
	o := s.oauth
	o.mu.Lock()
	o.codes[code] = oauthCode{challenge: q.Get("code_challenge"), clientID: q.Get("client_id"),
		redirect: q.Get("redirect_uri"), scope: q.Get("scope"), state: q.Get("state"), issued: s.opts.Now()}
	o.stats.Authorizations++
	o.mu.Unlock()
	back := redirect.Query()
	back.Set("code", code)
	back.Set("state", q.Get("state"))
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

type tokenRequest struct {
	GrantType    string `json:"grant_type"`
	Code         string `json:"code"`
	State        string `json:"state"`
	ClientID     string `json:"client_id"`
	RedirectURI  string `json:"redirect_uri"`
	CodeVerifier string `json:"code_verifier"`
	RefreshToken string `json:"refresh_token"`
}

func (s *Server) oauthToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		return
	}
	var req tokenRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be JSON")
		return
	}
	if req.ClientID == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_id is required")
		return
	}
	switch req.GrantType {
	case "authorization_code":
		s.exchangeCode(w, req)
	case "refresh_token":
		s.refreshGrant(w, r, req)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
	}
}

func (s *Server) exchangeCode(w http.ResponseWriter, req tokenRequest) {
	g, l, ok := s.redeem(w, req, true, nil)
	if ok {
		writeTokens(w, l, g)
	}
}

// redeem checks an authorization code grant (PKCE, and the state when withState) and issues
// the login's first tokens; false when it answered a refusal. chatgpt names the ChatGPT
// account of a ChatGPT login (nil for Claude's).
func (s *Server) redeem(w http.ResponseWriter, req tokenRequest, withState bool, chatgpt *chatgptIdentity) (*oauthGrant, Login, bool) {
	o := s.oauth
	now := s.opts.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	c, ok := o.codes[req.Code]
	delete(o.codes, req.Code) // a code is good for one try
	switch {
	case !ok || now.Sub(c.issued) > oauthCodeTTL:
		o.stats.InvalidGrants++
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid 'code' in request.")
		return nil, Login{}, false
	case c.clientID != req.ClientID || c.redirect != req.RedirectURI || (withState && c.state != req.State):
		o.stats.InvalidGrants++
		oauthError(w, http.StatusBadRequest, "invalid_grant", "client_id, redirect_uri or state does not match the authorization")
		return nil, Login{}, false
	case S256(req.CodeVerifier) != c.challenge:
		o.stats.InvalidGrants++
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid code verifier")
		return nil, Login{}, false
	}
	o.stats.CodeExchanges++
	g := &oauthGrant{email: "user-" + strings.ToLower(rand.Text()[:8]) + "@example.com", scope: c.scope, chatgpt: chatgpt}
	g.org = "org-" + g.email
	return g, o.issue(g, now), true
}

func (s *Server) refreshGrant(w http.ResponseWriter, r *http.Request, req tokenRequest) {
	s.rotate(w, r, req.RefreshToken, func(reason string) {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Refresh token not found or invalid")
	}, writeTokens)
}

// rotate answers a refresh grant: held while HoldRefreshes is on, then new tokens for a live
// refresh token (answered by ok), or refused (reason: "reused", "revoked" or "" for a token
// never issued).
func (s *Server) rotate(w http.ResponseWriter, r *http.Request, refreshToken string, refuse func(reason string),
	ok func(http.ResponseWriter, Login, *oauthGrant)) {
	o := s.oauth
	o.mu.Lock()
	o.stats.RefreshCalls++
	hold := o.hold
	o.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			o.mu.Lock()
			o.stats.Abandoned++
			o.mu.Unlock()
			return
		case <-s.done:
			return
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	g, live := o.grants[refreshToken]
	if !live {
		o.stats.InvalidGrants++
		refuse(o.dead[refreshToken])
		return
	}
	o.stats.Rotations++
	ok(w, o.issue(g, s.opts.Now()), g)
}

// writeTokens answers a grant the way Claude's token endpoint does.
func writeTokens(w http.ResponseWriter, l Login, g *oauthGrant) {
	body := map[string]any{
		"token_type":   "Bearer",
		"access_token": l.AccessToken,
		"expires_in":   int64(time.Until(l.ExpiresAt).Round(time.Second) / time.Second),
		"scope":        g.scope,
		"account":      map[string]string{"uuid": "acct-" + g.email, "email_address": g.email},
		"organization": map[string]string{"uuid": g.org, "name": g.email + "'s Organization"},
	}
	if l.RefreshToken != "" {
		body["refresh_token"] = l.RefreshToken
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

func (s *Server) oauthProfile(w http.ResponseWriter, r *http.Request) {
	token := bearer(r)
	o := s.oauth
	o.mu.Lock()
	email, ok := o.emails[token]
	exp := o.access[token]
	o.mu.Unlock()
	if !ok || !s.opts.Now().Before(exp) {
		writeAnthropicError(w, http.StatusUnauthorized, "authentication_error", "Invalid bearer token", "")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"account":      map[string]any{"uuid": "acct-" + email, "email": email, "has_claude_max": true},
		"organization": map[string]any{"uuid": "org-" + email, "organization_type": "claude_max", "rate_limit_tier": "default_claude_max_20x"},
	})
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// setUnifiedHeaders adds a subscription's unified rate-limit headers for a successful answer.
func setUnifiedHeaders(h http.Header, u *Unified, now time.Time) {
	reset := func(d jsonDuration, def time.Duration) string {
		if d == 0 {
			d = jsonDuration(def)
		}
		return strconv.FormatInt(now.Add(time.Duration(d)).Unix(), 10)
	}
	status := func(v float64) string {
		switch {
		case v >= 1:
			return "rejected"
		case v >= 0.9:
			return "allowed_warning"
		}
		return "allowed"
	}
	r5, r7 := reset(u.Reset5h, 5*time.Hour), reset(u.Reset7d, 7*24*time.Hour)
	worst, claim, at := u.FiveHour, "five_hour", r5
	if u.SevenDay > worst {
		worst, claim, at = u.SevenDay, "seven_day", r7
	}
	h.Set("anthropic-ratelimit-unified-status", status(worst))
	h.Set("anthropic-ratelimit-unified-reset", at)
	h.Set("anthropic-ratelimit-unified-representative-claim", claim)
	h.Set("anthropic-ratelimit-unified-5h-utilization", strconv.FormatFloat(u.FiveHour, 'f', -1, 64))
	h.Set("anthropic-ratelimit-unified-5h-reset", r5)
	h.Set("anthropic-ratelimit-unified-5h-status", status(u.FiveHour))
	h.Set("anthropic-ratelimit-unified-7d-utilization", strconv.FormatFloat(u.SevenDay, 'f', -1, 64))
	h.Set("anthropic-ratelimit-unified-7d-reset", r7)
	h.Set("anthropic-ratelimit-unified-7d-status", status(u.SevenDay))
}
