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
	"time"

	"github.com/fluxcode/fluxcode/internal/provider/gemini"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Google is Gemini CLI's "Login with Google": Google's OAuth with the CLI's installed-app
// client (its secret is public, as Google's installed-app clients' are), PKCE, form-encoded
// token requests, and the redirect to Code Assist's page that shows the code to paste. Google
// answers a refresh token only with offline access and consent; refresh tokens do not
// rotate. After the code exchange, Discover finds the login's Code Assist project at
// codeAssistURL ("" for Google's), onboarding the user when it has none.
func Google(codeAssistURL string) Config {
	return Config{
		Name:         "gemini",
		Platform:     store.PlatformGemini,
		AuthorizeURL: "https://accounts.google.com/o/oauth2/v2/auth",
		TokenURL:     "https://oauth2.googleapis.com/token",
		ProfileURL:   "https://www.googleapis.com/oauth2/v2/userinfo",
		ClientID:     "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com",
		ClientSecret: "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",
		RedirectURI:  "https://codeassist.google.com/authcode",
		Scopes: "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email " +
			"https://www.googleapis.com/auth/userinfo.profile",
		AuthParams:        url.Values{"access_type": {"offline"}, "prompt": {"consent"}},
		FormTokenRequests: true,
		Discover:          (&codeAssist{base: codeAssistURL, firstPoll: 500 * time.Millisecond}).discover,
	}
}

// Code Assist tiers a login may be onboarded on.
const (
	tierFree   = "free-tier"
	tierLegacy = "legacy-tier"
)

// codeAssist onboards a new Google login the way Gemini CLI does on its first start.
type codeAssist struct {
	base string
	// firstPoll is the wait before the onboarding operation is first polled again; each
	// next wait doubles, up to 5 s.
	firstPoll time.Duration
}

// codeAssistTier is a GeminiUserTier of loadCodeAssist's answer.
type codeAssistTier struct {
	ID                 string `json:"id"`
	IsDefault          bool   `json:"isDefault"`
	UserDefinedProject bool   `json:"userDefinedCloudaicompanionProject"`
}

// discover reads the login's e-mail (userinfo), then its Code Assist project: loadCodeAssist
// names it for a user already onboarded; otherwise the user is onboarded on the default tier
// (onboardUser, a long-running operation polled until done). The project, the e-mail and the
// tier are stored with the login; the tier is reported as its plan. A login without a project
// cannot serve a request, so failing to find one fails the sign-in.
func (ca *codeAssist) discover(ctx context.Context, c *Client, t *Token) error {
	if email, err := googleEmail(ctx, c, t.AccessToken); err == nil {
		t.Email = email
	}
	var load struct {
		CurrentTier  *codeAssistTier  `json:"currentTier"`
		AllowedTiers []codeAssistTier `json:"allowedTiers"`
		Project      string           `json:"cloudaicompanionProject"`
	}
	if err := ca.call(ctx, c, t.AccessToken, gemini.MethodLoadCodeAssist, gemini.LoadCodeAssistBody(""), &load); err != nil {
		return err
	}
	tier, project := "", load.Project
	switch {
	case load.CurrentTier != nil && project != "":
		tier = load.CurrentTier.ID
	case load.CurrentTier != nil:
		return errors.New("login: this Google account has a Code Assist tier but no project of its own " +
			"(a Workspace account: its administrator must set up Gemini Code Assist for a Cloud project)")
	default:
		chosen := codeAssistTier{ID: tierLegacy, UserDefinedProject: true}
		for _, at := range load.AllowedTiers {
			if at.IsDefault {
				chosen = at
			}
		}
		if chosen.UserDefinedProject {
			return fmt.Errorf("login: the default Code Assist tier of this Google account (%s) needs a Cloud project of its own", chosen.ID)
		}
		var err error
		if project, err = ca.onboard(ctx, c, t.AccessToken, chosen.ID); err != nil {
			return err
		}
		tier = chosen.ID
	}
	t.Plan = tier
	t.SetExtra(gemini.ExtraProject, project)
	t.SetExtra(gemini.ExtraTier, tier)
	t.SetExtra(gemini.ExtraEmail, t.Email)
	return nil
}

// onboard onboards the user on tier and returns the project Code Assist gave it. The CLI
// polls by repeating the call; so does this, with growing waits, until ctx ends.
func (ca *codeAssist) onboard(ctx context.Context, c *Client, token, tier string) (string, error) {
	body, _ := json.Marshal(map[string]any{"tierId": tier, "metadata": json.RawMessage(metadataJSON)})
	wait := ca.firstPoll
	for {
		var op struct {
			Done     bool `json:"done"`
			Response struct {
				Project struct {
					ID string `json:"id"`
				} `json:"cloudaicompanionProject"`
			} `json:"response"`
		}
		if err := ca.call(ctx, c, token, gemini.MethodOnboardUser, body, &op); err != nil {
			return "", err
		}
		if op.Done {
			if op.Response.Project.ID == "" {
				return "", fmt.Errorf("login: Code Assist onboarded the Google account on %s without a project", tier)
			}
			return op.Response.Project.ID, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("login: waiting for Code Assist's onboarding: %w", ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// metadataJSON is the client metadata Gemini CLI sends with onboarding.
const metadataJSON = `{"ideType":"IDE_UNSPECIFIED","platform":"PLATFORM_UNSPECIFIED","pluginType":"GEMINI"}`

// call posts body to a Code Assist method with the login's token and decodes the answer.
func (ca *codeAssist) call(ctx context.Context, c *Client, token, method string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gemini.CodeAssistURL(ca.base, method), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("login: %s request: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.HTTP().Do(req)
	if err != nil {
		return fmt.Errorf("login: Code Assist %s: %w", method, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("login: Code Assist %s answered %d: %s", method, resp.StatusCode, clip(googleMessage(raw)))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("login: Code Assist %s: %w", method, err)
	}
	return nil
}

// googleMessage is the message of a Google error body, or the body.
func googleMessage(raw []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	return string(raw)
}

// googleEmail reads the login's e-mail from Google's userinfo endpoint.
func googleEmail(ctx context.Context, c *Client, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Config().ProfileURL, nil)
	if err != nil {
		return "", fmt.Errorf("login: userinfo request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.HTTP().Do(req)
	if err != nil {
		return "", fmt.Errorf("login: userinfo: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("login: userinfo answered %d", resp.StatusCode)
	}
	var u struct {
		Email string `json:"email"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&u); err != nil {
		return "", fmt.Errorf("login: userinfo: %w", err)
	}
	return u.Email, nil
}
