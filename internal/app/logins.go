package app

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcode/fluxcode/internal/api"
	"github.com/fluxcode/fluxcode/internal/jobs"
	"github.com/fluxcode/fluxcode/internal/login"
)

// loginProviders are the subscription logins this node offers, their endpoints from the
// configuration. A new provider is one more entry here (and its variables in the table).
func (m *Main) loginProviders() []login.Config {
	claude := login.Claude()
	claude.AuthorizeURL, claude.TokenURL, claude.ProfileURL = m.cfg.ClaudeOAuthAuthorizeURL, m.cfg.ClaudeOAuthTokenURL, m.cfg.ClaudeOAuthProfileURL
	claude.ClientID, claude.RedirectURI = m.cfg.ClaudeOAuthClientID, m.cfg.ClaudeOAuthRedirectURI

	openai := login.OpenAI()
	openai.AuthorizeURL, openai.TokenURL = m.cfg.OpenAIOAuthAuthorizeURL, m.cfg.OpenAIOAuthTokenURL
	openai.ClientID, openai.RedirectURI = m.cfg.OpenAIOAuthClientID, m.cfg.OpenAIOAuthRedirectURI

	google := login.Google(m.cfg.GeminiCodeAssistURL)
	google.AuthorizeURL, google.TokenURL, google.ProfileURL = m.cfg.GoogleOAuthAuthorizeURL, m.cfg.GoogleOAuthTokenURL, m.cfg.GoogleOAuthUserinfoURL
	google.ClientID, google.ClientSecret, google.RedirectURI = m.cfg.GoogleOAuthClientID, m.cfg.GoogleOAuthClientSecret, m.cfg.GoogleOAuthRedirectURI

	return []login.Config{claude, openai, google}
}

// startLogins builds the subscription-login services and starts the background jobs: the
// refresh job runs on one node of the cluster at a time (package jobs), renewing every login
// that expires within OAUTH_REFRESH_BEFORE. The jobs stop when the node closes.
func (m *Main) startLogins() (*api.Logins, error) {
	// The PKCE verifier is derived with the API-key hash key, which every node shares.
	providers, err := login.NewRegistry(m.loginProviders(), nil, m.coord, m.keys.HashAPIKey)
	if err != nil {
		return nil, fmt.Errorf("subscription logins: %w", err)
	}
	ref := login.NewRefresher(m.store, m.coord, providers, m.logger, m.nodeName, m.cfg.OAuthRefreshLockTTL)

	runner := jobs.New(m.coord, m.store, m.nodeName, m.logger)
	before := m.cfg.OAuthRefreshBefore
	runner.Start(jobs.Job{Name: "oauth-refresh", Every: m.cfg.OAuthRefreshEvery,
		Run: func(ctx context.Context) (string, error) { return ref.RefreshDue(ctx, time.Now(), before) }})
	m.closers = append(m.closers, func(context.Context) error { runner.Close(); return nil })
	return &api.Logins{Providers: providers, Refresher: ref}, nil
}
