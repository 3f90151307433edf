package mockupstream

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// The login server also stands in for ChatGPT's sign-in at auth.openai.com, which the Codex
// CLI's "Sign in with ChatGPT" uses:
//
//	GET  /oauth/authorize  the same PKCE authorization as Claude's (shared above)
//	POST /oauth/token      form-encoded (JSON accepted too); grant_type authorization_code
//	                       (code, redirect_uri, client_id, code_verifier: no state) or
//	                       refresh_token (refresh_token, client_id, scope)
//
// Its tokens are JWTs. The id_token names the login: email, and under the claim
// "https://api.openai.com/auth" the chatgpt_account_id (sent to the Codex backend as
// ChatGPT-Account-ID), chatgpt_user_id and chatgpt_plan_type; the access token carries the
// same auth claim and its exp. Refresh tokens rotate like Claude's, but a dead one is
// refused the way OpenAI refuses it: 401 with an error object whose code is
// refresh_token_reused (rotated away) or refresh_token_invalidated (revoked).

// ChatGPTPlan is the plan the mock's ChatGPT logins report.
const ChatGPTPlan = "pro"

type chatgptIdentity struct {
	accountID, userID, plan, clientID string
}

func newChatGPTIdentity(clientID string) *chatgptIdentity {
	id := strings.ToLower(rand.Text())
	return &chatgptIdentity{accountID: id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:26],
		userID: "user-" + id[:24], plan: ChatGPTPlan, clientID: clientID}
}

// tokens mints the access token and id_token of a ChatGPT login.
func (c *chatgptIdentity) tokens(email string, now, expires time.Time) (access, id string) {
	auth := map[string]any{"chatgpt_account_id": c.accountID, "chatgpt_user_id": c.userID, "user_id": c.userID,
		"chatgpt_plan_type": c.plan}
	access = mockJWT(map[string]any{
		"iss": "https://auth.openai.com", "aud": []string{"https://api.openai.com/v1"}, "sub": c.userID,
		"client_id": c.clientID, "iat": now.Unix(), "exp": expires.Unix(), "jti": rand.Text(),
		"scp":                            []string{"openid", "profile", "email", "offline_access"},
		"https://api.openai.com/auth":    auth,
		"https://api.openai.com/profile": map[string]any{"email": email, "email_verified": true},
	})
	idAuth := map[string]any{"organizations": []map[string]any{{"id": "org-" + c.accountID[:8], "is_default": true,
		"role": "owner", "title": "Personal"}}}
	for k, v := range auth {
		idAuth[k] = v
	}
	id = mockJWT(map[string]any{
		"iss": "https://auth.openai.com", "aud": []string{c.clientID}, "sub": c.userID, "email": email,
		"email_verified": true, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": rand.Text(),
		"https://api.openai.com/auth": idAuth,
	})
	return access, id
}

// mockJWT renders claims as a JWT with a signature nobody checks.
func mockJWT(claims map[string]any) string {
	enc := base64.RawURLEncoding
	payload, _ := json.Marshal(claims)
	sig := make([]byte, 32)
	_, _ = rand.Read(sig)
	return enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT","kid":"mock"}`)) + "." + enc.EncodeToString(payload) + "." + enc.EncodeToString(sig)
}

// NewChatGPTLogin creates a ChatGPT login as if its owner had just signed in through the
// Codex CLI, and returns its tokens (AccountID is what ChatGPT-Account-ID must say).
func (s *Server) NewChatGPTLogin(email string) Login {
	o := s.oauth
	o.mu.Lock()
	defer o.mu.Unlock()
	g := &oauthGrant{email: email, scope: "openid profile email offline_access", org: "org-" + email,
		chatgpt: newChatGPTIdentity("app_EMoamEEZ73f0CkXaXp7hrann")}
	return o.issue(g, s.opts.Now())
}

// chatgptAccount is the ChatGPT account of an access token the login server issued; ok is
// false for any other token.
func (o *oauthServer) chatgptAccount(token string) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	id, ok := o.accounts[token]
	return id, ok
}

// openAIToken is auth.openai.com's token endpoint.
func (s *Server) openAIToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		return
	}
	var req tokenRequest
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<16))
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body cannot be read")
		return
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		root := gjson.ParseBytes(raw)
		req = tokenRequest{GrantType: root.Get("grant_type").Str, Code: root.Get("code").Str, ClientID: root.Get("client_id").Str,
			RedirectURI: root.Get("redirect_uri").Str, CodeVerifier: root.Get("code_verifier").Str, RefreshToken: root.Get("refresh_token").Str}
	} else {
		f, err := url.ParseQuery(string(raw))
		if err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be form-encoded or JSON")
			return
		}
		req = tokenRequest{GrantType: f.Get("grant_type"), Code: f.Get("code"), ClientID: f.Get("client_id"),
			RedirectURI: f.Get("redirect_uri"), CodeVerifier: f.Get("code_verifier"), RefreshToken: f.Get("refresh_token")}
	}
	if req.ClientID == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_id is required")
		return
	}
	switch req.GrantType {
	case "authorization_code":
		if g, l, ok := s.redeem(w, req, false, newChatGPTIdentity(req.ClientID)); ok {
			writeChatGPTTokens(w, l, g)
		}
	case "refresh_token":
		s.rotate(w, r, req.RefreshToken, func(reason string) { refuseChatGPTRefresh(w, reason) }, writeChatGPTTokens)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
	}
}

// refuseChatGPTRefresh answers a dead refresh token as OpenAI does.
func refuseChatGPTRefresh(w http.ResponseWriter, reason string) {
	code, msg := "refresh_token_invalidated", "Your refresh token has been invalidated. Please try signing in again."
	switch reason {
	case "reused":
		code, msg = "refresh_token_reused", "Your refresh token has already been used to generate a new access token. Please try signing in again."
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid refresh token")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error",
		"param": nil, "code": code}})
}

func writeChatGPTTokens(w http.ResponseWriter, l Login, g *oauthGrant) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id_token": l.IDToken, "access_token": l.AccessToken, "refresh_token": l.RefreshToken, "token_type": "Bearer",
		"expires_in": int64(time.Until(l.ExpiresAt).Round(time.Second) / time.Second), "scope": g.scope,
	})
}
