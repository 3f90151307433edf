package login

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/fluxcode/fluxcode/internal/store"
)

// Claude is Claude Code's own OAuth client: the claude.ai authorize page, the console's token
// endpoint (JSON bodies) and the page that shows the code to paste back ("code#state").
func Claude() Config {
	return Config{
		Name:            "claude",
		Platform:        store.PlatformAnthropic,
		AuthorizeURL:    "https://claude.ai/oauth/authorize",
		TokenURL:        "https://console.anthropic.com/v1/oauth/token",
		ProfileURL:      "https://api.anthropic.com/api/oauth/profile",
		ClientID:        "9d1c250a-e61b-44d9-88ed-5944d1962f5e",
		RedirectURI:     "https://console.anthropic.com/oauth/code/callback",
		Scopes:          "org:create_api_key user:profile user:inference",
		SetupScopes:     "user:inference",
		AuthParams:      url.Values{"code": {"true"}}, // the callback page shows the code to paste
		StateInExchange: true,
		Identify:        claudeIdentify,
		Discover:        claudeProfile,
	}
}

// claudeIdentify reads the account and organization Claude's token endpoint names.
func claudeIdentify(raw []byte, t *Token) error {
	var a struct {
		Account struct {
			UUID  string `json:"uuid"`
			Email string `json:"email_address"`
		} `json:"account"`
		Organization struct {
			UUID string `json:"uuid"`
		} `json:"organization"`
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	t.Email, t.AccountID, t.OrgID = a.Account.Email, a.Account.UUID, a.Organization.UUID
	t.SetExtra("email", t.Email)
	t.SetExtra("account_uuid", t.AccountID)
	t.SetExtra("org_uuid", t.OrgID)
	return nil
}

// claudeProfile reads the login's e-mail and plan. The profile only informs the operator: a
// failure to read it does not fail the sign-in.
func claudeProfile(ctx context.Context, c *Client, t *Token) error {
	p, err := readClaudeProfile(ctx, c, t.AccessToken)
	if err != nil {
		return nil //nolint:nilerr // informational only
	}
	t.Plan = p.Organization.Type
	if p.Account.Email != "" {
		t.Email = p.Account.Email
	}
	return nil
}

type claudeProfileAnswer struct {
	Account struct {
		Email string `json:"email"`
	} `json:"account"`
	Organization struct {
		Type string `json:"organization_type"` // claude_pro, claude_max, ...
	} `json:"organization"`
}

func readClaudeProfile(ctx context.Context, c *Client, accessToken string) (claudeProfileAnswer, error) {
	var p claudeProfileAnswer
	if c.cfg.ProfileURL == "" {
		return p, fmt.Errorf("login: no profile URL configured")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.ProfileURL, nil)
	if err != nil {
		return p, fmt.Errorf("login: profile request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Anthropic-Beta", "oauth-2025-04-20")
	resp, err := c.http.Do(req)
	if err != nil {
		return p, fmt.Errorf("login: profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return p, fmt.Errorf("login: profile answered %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&p); err != nil {
		return p, fmt.Errorf("login: profile: %w", err)
	}
	return p, nil
}
