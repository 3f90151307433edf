package mockupstream

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The mock's Google login server stands in for Google's OAuth as Gemini CLI uses it, with
// the real paths (accounts.google.com, oauth2.googleapis.com and www.googleapis.com share
// the mock's one host):
//
//	GET  /o/oauth2/v2/auth     PKCE (S256) authorization: 302 to redirect_uri?code=…&state=…;
//	                           login_hint names the Google account signing in
//	POST /token                form-encoded; grant_type authorization_code (code, client_id,
//	                           client_secret, redirect_uri, code_verifier) or refresh_token
//	                           (refresh_token, client_id, client_secret)
//	GET  /oauth2/v2/userinfo   Bearer access token → {"id","email","verified_email","picture"}
//
// Google does not rotate refresh tokens: a refresh answers a new access token (expires_in
// 3599) and no refresh token, and the one refresh token stays good until it is revoked; a
// revoked one is invalid_grant ("Token has been expired or revoked."). An access token is
// good until it expires, also after a refresh issued another one; Code Assist refuses an
// expired one with 401 UNAUTHENTICATED.

// GoogleAccessTTL is how long a Google access token lives unless SetGoogleAccessTTL says
// otherwise (Google answers expires_in 3599).
const GoogleAccessTTL = 3599 * time.Second

// GoogleStats counts what the Google login server and Code Assist's onboarding did.
type GoogleStats struct {
	Authorizations int64 `json:"authorizations"`
	CodeExchanges  int64 `json:"code_exchanges"`
	RefreshCalls   int64 `json:"refresh_calls"`
	InvalidGrants  int64 `json:"invalid_grants"`
	LoadCalls      int64 `json:"load_calls"`    // loadCodeAssist
	OnboardCalls   int64 `json:"onboard_calls"` // onboardUser and operation polls
}

// CodeAssistUser is what Code Assist knows of one Google account.
type CodeAssistUser struct {
	// Tier is the user's tier once onboarded (free-tier, standard-tier, legacy-tier).
	Tier string `json:"tier"`
	// Project is the Cloud project the user's requests bill to: set when onboarded, or
	// beforehand for a user who brings their own (a Workspace user on standard-tier).
	Project string `json:"project"`
	// Onboarded: loadCodeAssist answers currentTier and the project; otherwise it lists the
	// allowed tiers and the client must call onboardUser.
	Onboarded bool `json:"onboarded"`
	// OnboardPolls is how many more onboardUser calls (or operation reads) the onboarding
	// operation takes to be done after the first (1 for a user first seen signing in).
	OnboardPolls int `json:"onboard_polls"`
	polls        int
	opName       string
}

// Code Assist tier ids.
const (
	TierFree     = "free-tier"
	TierStandard = "standard-tier"
	TierLegacy   = "legacy-tier"
)

type googleCode struct {
	challenge, clientID, redirect, scope, state, email string
	issued                                             time.Time
}

type googleAccess struct {
	email   string
	expires time.Time
}

type googleServer struct {
	mu        sync.Mutex
	accessTTL time.Duration
	codes     map[string]googleCode
	refresh   map[string]string // live refresh token → email
	access    map[string]googleAccess
	users     map[string]*CodeAssistUser // by email
	stats     GoogleStats
}

func newGoogleServer() *googleServer {
	return &googleServer{accessTTL: GoogleAccessTTL, codes: map[string]googleCode{}, refresh: map[string]string{},
		access: map[string]googleAccess{}, users: map[string]*CodeAssistUser{}}
}

// user returns the Code Assist state of email, a new free-tier user not yet onboarded on
// first sight. Caller holds mu.
func (g *googleServer) user(email string) *CodeAssistUser {
	u := g.users[email]
	if u == nil {
		u = &CodeAssistUser{Tier: TierFree, OnboardPolls: 1}
		g.users[email] = u
	}
	return u
}

// issueAccess makes a new access token for email. Caller holds mu.
func (g *googleServer) issueAccess(email string, now time.Time) Login {
	l := Login{Email: email, AccessToken: randomToken("ya29.mock-"), ExpiresAt: now.Add(g.accessTTL)}
	g.access[l.AccessToken] = googleAccess{email: email, expires: l.ExpiresAt}
	return l
}

// who returns the email of a live access token; known is false for a token this server
// never issued, expired for one it issued that has expired.
func (g *googleServer) who(token string, now time.Time) (email string, known, expired bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.access[token]
	return a.email, ok, ok && !now.Before(a.expires)
}

// NewGoogleLogin signs email in (as if through the consent page) and returns its tokens.
// The user is onboarded on the free tier with a project of its own, ready for traffic,
// unless SetCodeAssistUser said otherwise before.
func (s *Server) NewGoogleLogin(email string) Login {
	g := s.google
	g.mu.Lock()
	defer g.mu.Unlock()
	u := g.user(email)
	if !u.Onboarded {
		u.Onboarded = true
		if u.Project == "" {
			u.Project = newProjectID()
		}
	}
	l := g.issueAccess(email, s.opts.Now())
	l.RefreshToken = randomToken("1//mock-")
	g.refresh[l.RefreshToken] = email
	return l
}

// SetCodeAssistUser sets what Code Assist knows of email, before or after it signs in.
func (s *Server) SetCodeAssistUser(email string, u CodeAssistUser) {
	if u.Tier == "" {
		u.Tier = TierFree
	}
	s.google.mu.Lock()
	s.google.users[email] = &u
	s.google.mu.Unlock()
}

// CodeAssistUser returns what Code Assist knows of email.
func (s *Server) CodeAssistUser(email string) CodeAssistUser {
	s.google.mu.Lock()
	defer s.google.mu.Unlock()
	if u := s.google.users[email]; u != nil {
		return *u
	}
	return CodeAssistUser{}
}

// SetGoogleAccessTTL sets how long Google access tokens issued from now on live.
func (s *Server) SetGoogleAccessTTL(d time.Duration) {
	s.google.mu.Lock()
	s.google.accessTTL = d
	s.google.mu.Unlock()
}

// ExpireGoogleAccess makes a Google access token expired at once.
func (s *Server) ExpireGoogleAccess(token string) {
	s.google.mu.Lock()
	if a, ok := s.google.access[token]; ok {
		a.expires = time.Time{}
		s.google.access[token] = a
	}
	s.google.mu.Unlock()
}

// RevokeGoogleLogin revokes a Google refresh token: the next refresh is invalid_grant.
func (s *Server) RevokeGoogleLogin(refreshToken string) {
	s.google.mu.Lock()
	delete(s.google.refresh, refreshToken)
	s.google.mu.Unlock()
}

// GoogleStats returns the Google login server's counters.
func (s *Server) GoogleStats() GoogleStats {
	s.google.mu.Lock()
	defer s.google.mu.Unlock()
	return s.google.stats
}

// googlePaths are the Google login server's paths and their handlers.
var googlePaths = map[string]func(*Server, http.ResponseWriter, *http.Request){
	"/o/oauth2/v2/auth":   (*Server).googleAuthorize,
	"/token":              (*Server).googleToken,
	"/oauth2/v2/userinfo": (*Server).googleUserinfo,
}

// serveGoogleOAuth answers the Google login server's paths; false when path is not one.
func (s *Server) serveGoogleOAuth(w http.ResponseWriter, r *http.Request) bool {
	h, ok := googlePaths[r.URL.Path]
	if ok {
		h(s, w, r)
	}
	return ok
}

// authorizeProblem is what is wrong with an authorization request, or "".
func authorizeProblem(r *http.Request, redirect *url.URL, err error) string {
	q := r.URL.Query()
	for _, c := range []struct {
		bad bool
		msg string
	}{
		{r.Method != http.MethodGet, "method not allowed"},
		{err != nil || !redirect.IsAbs(), "redirect_uri must be an absolute URL"},
		{q.Get("response_type") != "code" || q.Get("client_id") == "" || q.Get("scope") == "", "response_type=code, client_id and scope are required"},
		{q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "", "PKCE with code_challenge_method=S256 is required"},
	} {
		if c.bad {
			return c.msg
		}
	}
	return ""
}

func (s *Server) googleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if msg := authorizeProblem(r, redirect, err); msg != "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	email := q.Get("login_hint")
	if email == "" {
		email = "user-" + strings.ToLower(rand.Text()[:8]) + "@gmail.com"
	}
	code := "4/0mock-" + rand.Text()
	g := s.google
	g.mu.Lock()
	g.codes[code] = googleCode{challenge: q.Get("code_challenge"), clientID: q.Get("client_id"), redirect: q.Get("redirect_uri"),
		scope: q.Get("scope"), state: q.Get("state"), email: email, issued: s.opts.Now()}
	g.stats.Authorizations++
	g.mu.Unlock()
	back := redirect.Query()
	back.Set("code", code)
	if st := q.Get("state"); st != "" {
		back.Set("state", st)
	}
	back.Set("scope", q.Get("scope"))
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (s *Server) googleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	if err := r.ParseForm(); err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	f := r.PostForm
	if f.Get("client_id") == "" || f.Get("client_secret") == "" {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "The OAuth client was not found.")
		return
	}
	g := s.google
	now := s.opts.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	switch f.Get("grant_type") {
	case "authorization_code":
		c, ok := g.codes[f.Get("code")]
		delete(g.codes, f.Get("code")) // a code is good for one try
		switch {
		case !ok || now.Sub(c.issued) > oauthCodeTTL || c.clientID != f.Get("client_id") || c.redirect != f.Get("redirect_uri"):
			g.stats.InvalidGrants++
			oauthError(w, http.StatusBadRequest, "invalid_grant", "Bad Request")
			return
		case S256(f.Get("code_verifier")) != c.challenge:
			g.stats.InvalidGrants++
			oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid code verifier.")
			return
		}
		g.stats.CodeExchanges++
		g.user(c.email)
		l := g.issueAccess(c.email, now)
		l.RefreshToken = randomToken("1//mock-")
		g.refresh[l.RefreshToken] = c.email
		writeGoogleTokens(w, l, c.scope, now)
	case "refresh_token":
		g.stats.RefreshCalls++
		email, ok := g.refresh[f.Get("refresh_token")]
		if !ok {
			g.stats.InvalidGrants++
			oauthError(w, http.StatusBadRequest, "invalid_grant", "Token has been expired or revoked.")
			return
		}
		writeGoogleTokens(w, g.issueAccess(email, now), googleScopes, now) // no new refresh token
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+f.Get("grant_type"))
	}
}

// googleScopes are Gemini CLI's scopes, as Google reports them back.
const googleScopes = "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile openid"

// writeGoogleTokens answers a grant the way Google's token endpoint does.
func writeGoogleTokens(w http.ResponseWriter, l Login, scope string, now time.Time) {
	body := map[string]any{
		"access_token": l.AccessToken,
		"expires_in":   int64(l.ExpiresAt.Sub(now).Round(time.Second) / time.Second),
		"scope":        scope,
		"token_type":   "Bearer",
	}
	if l.RefreshToken != "" {
		body["refresh_token"] = l.RefreshToken
	}
	controlJSON(w, body)
}

func (s *Server) googleUserinfo(w http.ResponseWriter, r *http.Request) {
	email, known, expired := s.google.who(bearer(r), s.opts.Now())
	if !known || expired {
		writeGeminiError(w, http.StatusUnauthorized, "UNAUTHENTICATED", googleUnauthenticated, nil)
		return
	}
	controlJSON(w, map[string]any{"id": "1" + strings.Repeat("0", 20), "email": email, "verified_email": true,
		"picture": "https://lh3.googleusercontent.com/a/mock"})
}

// googleUnauthenticated is Google's message for a missing, invalid or expired token.
const googleUnauthenticated = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."

// newProjectID makes a project id of the shape Code Assist gives free-tier users.
func newProjectID() string {
	return "mock-project-" + strings.ToLower(rand.Text()[:10])
}

// serveGoogleControl answers the Google part of the control API; false when op is not one:
//
//	GET  /_mock/google/stats              GoogleStats
//	POST /_mock/google/login?email=E      a signed-in, onboarded login: {"login":Login,"project":P}
//	POST /_mock/google/user?email=E       body CodeAssistUser: what Code Assist knows of E
//	POST /_mock/google/expire?token=T     access token T expires now
//	POST /_mock/google/revoke?token=R     refresh token R is revoked (invalid_grant)
//	POST /_mock/google/ttl?d=D            access tokens issued from now live D
func (s *Server) serveGoogleControl(w http.ResponseWriter, r *http.Request, op string) bool {
	q := r.URL.Query()
	ok := map[string]bool{"ok": true}
	switch r.Method + " " + op {
	case "GET google/stats":
		controlJSON(w, s.GoogleStats())
	case "POST google/login":
		l := s.NewGoogleLogin(q.Get("email"))
		controlJSON(w, map[string]any{"login": l, "project": s.CodeAssistUser(q.Get("email")).Project})
	case "POST google/user":
		var u CodeAssistUser
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&u); err != nil {
			controlError(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
			return true
		}
		s.SetCodeAssistUser(q.Get("email"), u)
		controlJSON(w, ok)
	case "POST google/expire":
		s.ExpireGoogleAccess(q.Get("token"))
		controlJSON(w, ok)
	case "POST google/revoke":
		s.RevokeGoogleLogin(q.Get("token"))
		controlJSON(w, ok)
	case "POST google/ttl":
		d, err := parseDuration(q.Get("d"))
		if err != nil {
			controlError(w, http.StatusBadRequest, fmt.Errorf("d: %w", err))
			return true
		}
		s.SetGoogleAccessTTL(d)
		controlJSON(w, ok)
	default:
		return false
	}
	return true
}
