package login

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// Credentials extra values of a ChatGPT login; the Codex request path sends the account id
// as ChatGPT-Account-ID.
const (
	ExtraChatGPTAccountID = "chatgpt_account_id"
	ExtraChatGPTUserID    = "chatgpt_user_id"
	ExtraPlan             = "plan"
)

// OpenAI is the Codex CLI's "Sign in with ChatGPT" client at auth.openai.com: PKCE, an
// OpenID id_token that names the ChatGPT account, form-encoded token requests, and a
// redirect to the CLI's local callback port (the operator pastes the URL the browser could
// not open).
func OpenAI() Config {
	return Config{
		Name:         "openai",
		Platform:     store.PlatformOpenAI,
		AuthorizeURL: "https://auth.openai.com/oauth/authorize",
		TokenURL:     "https://auth.openai.com/oauth/token",
		ClientID:     "app_EMoamEEZ73f0CkXaXp7hrann",
		RedirectURI:  "http://localhost:1455/auth/callback",
		Scopes:       "openid profile email offline_access",
		RefreshScope: "openid profile email",
		AuthParams: url.Values{"id_token_add_organizations": {"true"}, "codex_cli_simplified_flow": {"true"},
			"originator": {"codex_cli_rs"}},
		FormTokenRequests: true,
		Identify:          openAIIdentify,
	}
}

// openAIClaims are the id_token (and access token) claims that say who a ChatGPT login is.
type openAIClaims struct {
	Email string `json:"email"`
	Auth  struct {
		AccountID string `json:"chatgpt_account_id"`
		UserID    string `json:"chatgpt_user_id"`
		Plan      string `json:"chatgpt_plan_type"`
	} `json:"https://api.openai.com/auth"`
	Profile struct {
		Email string `json:"email"`
	} `json:"https://api.openai.com/profile"`
}

// openAIIdentify reads the ChatGPT account from the id_token (the access token carries the
// same claims when a refresh answers without one). The tokens come straight from the
// issuer over TLS, so their claims are read, not verified.
func openAIIdentify(_ []byte, t *Token) error {
	var c openAIClaims
	jwt := t.IDToken
	if jwt == "" {
		jwt = t.AccessToken
	}
	if err := JWTClaims(jwt, &c); err != nil {
		if t.IDToken == "" {
			return nil // an opaque access token and no id_token: nothing to learn
		}
		return fmt.Errorf("id_token: %w", err)
	}
	t.Email, t.Plan, t.AccountID = c.Email, c.Auth.Plan, c.Auth.AccountID
	if t.Email == "" {
		t.Email = c.Profile.Email
	}
	// Without expires_in, the access token's own expiry (a JWT at OpenAI).
	var at struct {
		Exp int64 `json:"exp"`
	}
	if t.ExpiresAt.IsZero() && JWTClaims(t.AccessToken, &at) == nil && at.Exp > 0 {
		t.ExpiresAt = time.Unix(at.Exp, 0).UTC()
	}
	t.SetExtra("email", t.Email)
	t.SetExtra(ExtraChatGPTAccountID, c.Auth.AccountID)
	t.SetExtra(ExtraChatGPTUserID, c.Auth.UserID)
	t.SetExtra(ExtraPlan, c.Auth.Plan)
	return nil
}

// JWTClaims decodes a JWT's payload into v without checking its signature.
func JWTClaims(jwt string, v any) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return fmt.Errorf("JWT payload: %w", err)
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("JWT payload: %w", err)
	}
	return nil
}
