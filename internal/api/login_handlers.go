package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/login"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	"github.com/fluxcode/fluxcode/internal/provider/gemini"
	"github.com/fluxcode/fluxcode/internal/provider/openai"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Logins are what the login routes use: the login providers (their sign-in flows and token
// clients) and the refresher (package login).
type Logins struct {
	Providers *login.Registry
	Refresher *login.Refresher
}

// loginStartReq starts a sign-in.
type loginStartReq struct {
	Kind string `json:"kind"` // oauth (default) | setup_token (Claude only)
}

type loginStartView struct {
	AuthURL   string `json:"auth_url"`
	State     string `json:"state"`
	ExpiresIn int64  `json:"expires_in"` // seconds
}

// loginFinishReq finishes a sign-in and creates the account: the fields of an account, minus
// what the login decides (platform, type, credentials).
type loginFinishReq struct {
	// Code is what the operator pasted: the callback URL, "code#state", or the bare code
	// (then State is required).
	Code        string          `json:"code"`
	State       string          `json:"state"`
	Name        *string         `json:"name"`
	BaseURL     *string         `json:"base_url"`
	ProxyID     optional[int64] `json:"proxy_id"`
	Priority    *int            `json:"priority"`
	Concurrency *int            `json:"concurrency"`
	GroupIDs    *[]int64        `json:"group_ids"`
}

type loginFinishView struct {
	Account accountView `json:"account"`
	Login   struct {
		Provider  string    `json:"provider"`
		Kind      string    `json:"kind"`
		Email     string    `json:"email"`
		Plan      string    `json:"plan"`
		AccountID string    `json:"account_id,omitempty"` // the provider's id of the login (ChatGPT's account id)
		ExpiresAt time.Time `json:"expires_at"`
		// Extra is what the sign-in learnt that the request path uses (project id, …).
		Extra map[string]string `json:"extra,omitempty"`
	} `json:"login"`
	// Check is the account's first request upstream (its model list): its status, 0 when
	// it could not be sent.
	Check struct {
		OK     bool   `json:"ok"`
		Status int    `json:"status"`
		Error  string `json:"error,omitempty"`
	} `json:"check"`
}

func (a *api) loginsReady() error {
	if a.logins == nil {
		return newError(kindUnavailable, "subscription logins are not configured on this node")
	}
	return nil
}

// loginProvider is the provider the route names ({provider}: claude, openai, gemini, …).
func (a *api) loginProvider(r *http.Request) (*login.Provider, error) {
	if err := a.loginsReady(); err != nil {
		return nil, err
	}
	name := r.PathValue("provider")
	p, ok := a.logins.Providers.Get(name)
	if !ok {
		return nil, newError(kindNotFound, "no login provider %q; this node offers %s", name,
			strings.Join(a.logins.Providers.Names(), ", "))
	}
	return p, nil
}

// startSubscriptionLogin begins a sign-in: the page to open and the state to finish with. Any node may
// finish it.
func (a *api) startSubscriptionLogin(w http.ResponseWriter, r *http.Request) {
	var req loginStartReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	p, err := a.loginProvider(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Kind == "" {
		req.Kind = login.KindOAuth
	}
	if err := checkEnum("kind", req.Kind, p.Client.Config().Kinds()...); err != nil {
		a.writeError(w, r, err)
		return
	}
	st, err := p.Flows.Start(r.Context(), req.Kind)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, loginStartView{AuthURL: st.URL, State: st.State, ExpiresIn: int64(st.ExpiresIn / time.Second)})
}

// finishSubscriptionLogin exchanges the pasted code, stores the account with its tokens sealed, tests it
// with one request and reports what the login is.
func (a *api) finishSubscriptionLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var req loginFinishReq
	if err := decodeJSON(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	p, err := a.loginProvider(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	cfg := p.Client.Config()
	code, state, err := login.ParseCode(req.Code, req.State)
	if err != nil {
		a.writeError(w, r, invalid("code", "%s", err.Error()))
		return
	}
	// The account's own fields are checked before the code is spent: a code works once.
	acc := &store.Account{Platform: cfg.Platform, Type: store.AccountTypeOAuth, Status: store.StatusActive,
		Schedulable: true, Credentials: store.Credentials{AccessToken: "pending"}}
	name := cfg.Name + "-login"
	if req.Name != nil {
		name = *req.Name
	}
	fields := &accountReq{Name: &name, BaseURL: req.BaseURL, ProxyID: req.ProxyID, Priority: req.Priority,
		Concurrency: req.Concurrency, GroupIDs: req.GroupIDs}
	if err := a.applyAccount(ctx, acc, fields); err != nil {
		a.writeError(w, r, err)
		return
	}
	done, err := p.Flows.Finish(ctx, code, state)
	switch {
	case errors.Is(err, login.ErrFlowUnknown):
		a.writeError(w, r, invalid("state", "%s", err.Error()))
		return
	case errors.Is(err, login.ErrInvalidGrant):
		a.writeError(w, r, invalid("code", "the sign-in refused the code: %s", err.Error()))
		return
	case errors.Is(err, login.ErrDiscovery):
		// Its reason is for the operator (a login that needs a project of its own).
		a.log.WarnContext(ctx, "setting up a new login failed", "provider", cfg.Name, "err", err)
		a.writeError(w, r, newError(kindUnavailable, "%s; start again", provider.CleanText(err.Error(), 400)))
		return
	case err != nil:
		a.log.WarnContext(ctx, "exchanging a sign-in code failed", "err", err)
		a.writeError(w, r, newError(kindUnavailable, "the sign-in's token endpoint could not be reached; start again"))
		return
	}
	tok := done.Token
	acc.Credentials = store.Credentials{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: tok.ExpiresAt,
		Extra: login.MergeExtra(map[string]string{"login_kind": done.Kind}, tok.Extra)}
	if err := a.store.CreateAccount(ctx, acc); err != nil {
		a.writeError(w, r, nameConflict(err))
		return
	}
	a.publishAccount(ctx, acc.ID, acc.GroupIDs)

	var out loginFinishView
	out.Account = viewAccount(acc)
	out.Login.Provider, out.Login.Kind, out.Login.Email, out.Login.Plan = cfg.Name, done.Kind, tok.Email, tok.Plan
	out.Login.AccountID, out.Login.ExpiresAt = tok.AccountID, tok.ExpiresAt
	out.Login.Extra = publicExtra(tok.Extra)
	out.Check.Status, err = a.checkAccount(ctx, acc)
	out.Check.OK = err == nil && out.Check.Status >= 200 && out.Check.Status <= 299
	if err != nil {
		out.Check.Error = provider.CleanText(err.Error(), 300, tok.AccessToken, tok.RefreshToken)
	}
	writeJSON(w, http.StatusCreated, out)
}

// checkAccount sends the account's first request: its model list, which costs no tokens.
func (a *api) checkAccount(ctx context.Context, acc *store.Account) (int, error) {
	if acc.ProxyID != nil {
		return 0, errors.New("not checked: the account goes through a proxy, which the first request through the gateway will use")
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := platformProvider(acc.Platform).NewUpstreamRequest(ctx, provider.OpModels, provider.Target{Account: acc},
		provider.Inbound{Header: http.Header{}}, nil)
	if err != nil {
		return 0, err
	}
	// Through the SSRF guard, as the gateway dials: the base URL is the admin's choice.
	client := &http.Client{Transport: &http.Transport{DialContext: a.upstreams.DialContext(net.Dialer{Timeout: 10 * time.Second})}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("first request: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// platformProvider is the protocol of a platform's accounts, for the first request of a new
// login (its model list: Codex's catalogue for a ChatGPT login, loadCodeAssist for a Google one).
func platformProvider(platform string) provider.Provider {
	switch platform {
	case store.PlatformOpenAI:
		return openai.New()
	case store.PlatformGemini:
		return gemini.New()
	}
	return anthropic.New()
}

// refreshLogin renews an account's login now (waiting for another node's renewal in progress).
func (a *api) refreshLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := a.loginsReady(); err != nil {
		a.writeError(w, r, err)
		return
	}
	acc, err := byPathID(r, a.store.GetAccount)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if !a.logins.Refresher.Renews(acc) {
		a.writeError(w, r, invalid("id", "account %d is not a login with a refresh token", acc.ID))
		return
	}
	if _, err := a.logins.Refresher.Refresh(ctx, acc); err != nil {
		if errors.Is(err, login.ErrInvalidGrant) {
			a.writeError(w, r, invalid("id", "the refresh token was refused; the account is marked in error: %s", err.Error()))
			return
		}
		a.log.WarnContext(ctx, "renewing a login failed", "account", acc.ID, "err", err)
		a.writeError(w, r, newError(kindUnavailable, "the login could not be renewed now; retry shortly"))
		return
	}
	writeStored(a, w, r, a.store.GetAccount, acc.ID, viewAccount)
}

// renewAtCreation gives a new login that came with only a refresh token its access token
// now: an account that cannot be renewed is refused at once instead of failing every request
// later.
func (a *api) renewAtCreation(ctx context.Context, acc *store.Account) error {
	c := &acc.Credentials
	if acc.Type != store.AccountTypeOAuth || c.AccessToken != "" || c.RefreshToken == "" {
		return nil
	}
	var p *login.Provider
	if a.logins != nil {
		p, _ = a.logins.Providers.ForPlatform(acc.Platform)
	}
	if p == nil {
		return invalid("credentials.access_token", "an oauth account needs credentials.access_token here: this node cannot renew %s logins", acc.Platform)
	}
	tok, err := p.Client.Refresh(ctx, c.RefreshToken)
	if errors.Is(err, login.ErrInvalidGrant) {
		return invalid("credentials.refresh_token", "the refresh token was refused: %s", err.Error())
	}
	if err != nil {
		a.log.WarnContext(ctx, "renewing a new login failed", "err", err)
		return newError(kindUnavailable, "the refresh token could not be used now (the token endpoint is unreachable); retry shortly")
	}
	c.AccessToken, c.ExpiresAt = tok.AccessToken, tok.ExpiresAt
	if tok.RefreshToken != "" {
		c.RefreshToken = tok.RefreshToken
	}
	c.Extra = login.MergeExtra(c.Extra, tok.Extra)
	return nil
}

// identifyLogin fills the extra values a login's own access token names and the admin left
// out: a ChatGPT access token (a JWT) carries its account id, which the Codex backend needs,
// so tokens pasted from a Codex CLI's auth.json work as they are.
func (a *api) identifyLogin(acc *store.Account) {
	if acc.Type != store.AccountTypeOAuth || a.logins == nil {
		return
	}
	p, ok := a.logins.Providers.ForPlatform(acc.Platform)
	if !ok || p.Client.Config().Identify == nil {
		return
	}
	tok := login.Token{AccessToken: acc.Credentials.AccessToken}
	if p.Client.Config().Identify(nil, &tok) != nil {
		return
	}
	missing := map[string]string{}
	for k, v := range tok.Extra {
		if acc.Credentials.Extra[k] == "" {
			missing[k] = v
		}
	}
	acc.Credentials.Extra = login.MergeExtra(acc.Credentials.Extra, missing)
}

// publicExtra is the part of a login's extra values shown to the operator: identifiers, never
// tokens.
func publicExtra(extra map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range extra {
		if !strings.Contains(k, "token") && !strings.Contains(k, "secret") {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
