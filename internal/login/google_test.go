package login

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/provider/gemini"
)

// googleAt is the Google login with every endpoint at the mock.
func googleAt(m *mockupstream.Server) *Client {
	cfg := Google(m.URL())
	cfg.AuthorizeURL, cfg.TokenURL, cfg.ProfileURL = m.URL()+"/o/oauth2/v2/auth", m.URL()+"/token", m.URL()+"/oauth2/v2/userinfo"
	cfg.Discover = (&codeAssist{base: m.URL(), firstPoll: time.Millisecond}).discover
	return NewClient(cfg, nil, nil)
}

// signIn runs the consent page for email and exchanges its code.
func signIn(t *testing.T, c *Client, email string) Token {
	t.Helper()
	verifier := "verifier-" + strings.Repeat("v", 40)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(c.AuthURL("st", s256(verifier), false) + "&login_hint=" + url.QueryEscape(email))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	tok, err := c.Exchange(context.Background(), loc.Query().Get("code"), "st", verifier)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func s256(v string) string { return mockupstream.S256(v) }

// TestGoogleDiscover: after the code exchange, a new user is onboarded on the default tier
// (the operation polled until done) and the project stored; a user who has one keeps it
// without onboarding; a user whose tier needs a project of its own cannot sign in.
func TestGoogleDiscover(t *testing.T) {
	m := mockupstream.New(mockupstream.Options{})
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := googleAt(m)
	ctx := context.Background()

	tok := signIn(t, c, "new@example.com")
	if err := c.Discover(ctx, &tok); err != nil {
		t.Fatal(err)
	}
	want := m.CodeAssistUser("new@example.com").Project
	if want == "" || tok.Extra[gemini.ExtraProject] != want || tok.Plan != "free-tier" || tok.Email != "new@example.com" ||
		tok.Extra[gemini.ExtraEmail] != "new@example.com" || tok.RefreshToken == "" || tok.ExpiresAt.IsZero() {
		t.Fatalf("new user: %+v (mock project %q)", tok, want)
	}
	if st := m.GoogleStats(); st.OnboardCalls != 2 || st.LoadCalls != 1 {
		t.Fatalf("onboarding calls: %+v", st)
	}

	m.SetCodeAssistUser("corp@example.com", mockupstream.CodeAssistUser{Tier: mockupstream.TierStandard, Project: "acme", Onboarded: true})
	tok = signIn(t, c, "corp@example.com")
	if err := c.Discover(ctx, &tok); err != nil || tok.Extra[gemini.ExtraProject] != "acme" || tok.Plan != "standard-tier" {
		t.Fatalf("existing project: %+v %v", tok, err)
	}
	if st := m.GoogleStats(); st.OnboardCalls != 2 {
		t.Fatalf("an onboarded user was onboarded again: %+v", st)
	}

	m.SetCodeAssistUser("ws@example.com", mockupstream.CodeAssistUser{Tier: mockupstream.TierStandard})
	tok = signIn(t, c, "ws@example.com")
	if err := c.Discover(ctx, &tok); err == nil || !strings.Contains(err.Error(), "project") {
		t.Fatalf("a tier that needs a project: %v", err)
	}

	// Google's refresh: a new access token, the refresh token kept (none answered).
	again, err := c.Refresh(ctx, signIn(t, c, "r@example.com").RefreshToken)
	if err != nil || again.AccessToken == "" || again.RefreshToken != "" {
		t.Fatalf("refresh: %+v %v", again, err)
	}
}
