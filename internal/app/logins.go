package app

import (
	"context"
	"time"

	"github.com/fluxcode/fluxcode/internal/api"
	"github.com/fluxcode/fluxcode/internal/jobs"
	"github.com/fluxcode/fluxcode/internal/login"
)

// startLogins builds the subscription-login services and starts the background jobs: the
// refresh job runs on one node of the cluster at a time (package jobs), renewing every login
// that expires within OAUTH_REFRESH_BEFORE. The jobs stop when the node closes.
func (m *Main) startLogins() *api.Logins {
	lc := login.Claude()
	lc.AuthorizeURL, lc.TokenURL, lc.ProfileURL = m.cfg.ClaudeOAuthAuthorizeURL, m.cfg.ClaudeOAuthTokenURL, m.cfg.ClaudeOAuthProfileURL
	lc.ClientID, lc.RedirectURI = m.cfg.ClaudeOAuthClientID, m.cfg.ClaudeOAuthRedirectURI
	client := login.NewClient(lc, nil, nil)
	ref := login.NewRefresher(m.store, m.coord, client, m.logger, m.nodeName, m.cfg.OAuthRefreshLockTTL)
	// The PKCE verifier is derived with the API-key hash key, which every node shares.
	flows := login.NewFlows(client, m.coord, m.keys.HashAPIKey)

	runner := jobs.New(m.coord, m.store, m.nodeName, m.logger)
	before := m.cfg.OAuthRefreshBefore
	runner.Start(jobs.Job{Name: "oauth-refresh", Every: m.cfg.OAuthRefreshEvery,
		Run: func(ctx context.Context) (string, error) { return ref.RefreshDue(ctx, time.Now(), before) }})
	m.closers = append(m.closers, func(context.Context) error { runner.Close(); return nil })
	return &api.Logins{Flows: flows, Client: client, Refresher: ref}
}
