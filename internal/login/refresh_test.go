package login_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/login"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/store"
)

func mockConfig(m *mockupstream.Server) login.Config {
	c := login.Claude()
	c.AuthorizeURL, c.TokenURL, c.ProfileURL = m.URL()+"/oauth/authorize", m.URL()+"/v1/oauth/token", m.URL()+"/api/oauth/profile"
	return c
}

// oauthAccount stores an account holding a login the mock issued.
func oauthAccount(t *testing.T, d *gatewaytest.Deps) (*store.Account, mockupstream.Login) {
	l := d.Mock.NewLogin("max@example.com")
	a := gatewaytest.NewAccount(t, d, l.AccessToken, nil, func(a *store.Account) {
		a.Type = store.AccountTypeOAuth
		a.Credentials = store.Credentials{AccessToken: l.AccessToken, RefreshToken: l.RefreshToken, ExpiresAt: l.ExpiresAt}
	})
	return a, l
}

// Many callers that saw the same expired token at once: one refresh call reaches the token
// endpoint, and every caller gets the new token.
func TestConcurrentRefreshesMakeOneCall(t *testing.T) {
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{})
	a, l := oauthAccount(t, d)
	reg := renewers(t, mockConfig(d.Mock))
	// Two refreshers: two nodes sharing the store and the coordinator.
	r1 := login.NewRefresher(d.Store, d.Coord, reg, nil, "n1", 0)
	r2 := login.NewRefresher(d.Store, d.Coord, reg, nil, "n2", 0)
	d.Mock.HoldRefreshes() // the first call waits, so the others pile up behind the lock
	var wg sync.WaitGroup
	got := make([]*store.Account, 20)
	errs := make([]error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := r1
			if i%2 == 1 {
				r = r2
			}
			got[i], errs[i] = r.Refresh(t.Context(), a)
		}()
	}
	waitRefreshCalls(t, d.Mock, 1)
	d.Mock.ReleaseRefreshes()
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if got[i].CredentialsVersion != 1 || got[i].Credentials.AccessToken == l.AccessToken ||
			got[i].Credentials.RefreshToken == l.RefreshToken {
			t.Fatalf("caller %d got version %d, token unchanged", i, got[i].CredentialsVersion)
		}
	}
	if st := d.Mock.OAuthStats(); st.RefreshCalls != 1 || st.Rotations != 1 {
		t.Fatalf("token endpoint saw %+v, want one refresh", st)
	}
}

// invalid_grant because another writer stored newer credentials meanwhile is no fault of the
// login: no mark. invalid_grant for real marks the account in error, with the reason.
func TestInvalidGrantMarksOnlyWithoutNewerCredentials(t *testing.T) {
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{})
	r := login.NewRefresher(d.Store, d.Coord, renewers(t, mockConfig(d.Mock)), nil, "n1", 0)

	a, l := oauthAccount(t, d)
	d.Mock.HoldRefreshes()
	done := make(chan error, 1)
	go func() { _, err := r.Refresh(context.Background(), a); done <- err }()
	waitRefreshCalls(t, d.Mock, 1)
	// Meanwhile another writer (a node whose lock had lapsed) rotated and stored a newer token.
	d.Mock.RevokeLogin(l.RefreshToken)
	newer := d.Mock.NewLogin("max@example.com")
	if _, err := d.Store.UpdateCredentials(t.Context(), a.ID, store.Credentials{AccessToken: newer.AccessToken,
		RefreshToken: newer.RefreshToken, ExpiresAt: newer.ExpiresAt}, 0); err != nil {
		t.Fatal(err)
	}
	d.Mock.ReleaseRefreshes()
	if err := <-done; err != nil {
		t.Fatalf("refresh after a newer token was stored: %v", err)
	}
	if got := gatewaytest.Account(t, d.Store, a.ID); got.Status != store.StatusActive {
		t.Fatalf("account %s (%s) after a stale invalid_grant", got.Status, got.ErrorMessage)
	}

	b, lb := oauthAccount(t, d)
	d.Mock.RevokeLogin(lb.RefreshToken)
	_, err := r.Refresh(t.Context(), b)
	if !errors.Is(err, login.ErrInvalidGrant) {
		t.Fatalf("refresh of a revoked login: %v", err)
	}
	got := gatewaytest.Account(t, d.Store, b.ID)
	if got.Status != store.StatusError || !strings.Contains(got.ErrorMessage, "invalid_grant") {
		t.Fatalf("revoked login: status %s, message %q", got.Status, got.ErrorMessage)
	}
}

func waitRefreshCalls(t *testing.T, m *mockupstream.Server, n int64) {
	t.Helper()
	for range 2000 {
		if m.OAuthStats().RefreshCalls >= n {
			return
		}
		sleep()
	}
	t.Fatalf("the token endpoint never saw %d refresh calls", n)
}

// renewers is a registry of cfgs that only renews.
func renewers(t *testing.T, cfgs ...login.Config) *login.Registry {
	t.Helper()
	reg, err := login.NewRegistry(cfgs, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// A login is renewed only by its own platform's provider: another platform's refresh token
// never reaches Claude's token endpoint, and a node without that platform's provider does
// not renew it.
func TestOnlyOwnProviderRenews(t *testing.T) {
	r := login.NewRefresher(nil, nil, renewers(t, login.Claude()), nil, "n1", 0)
	a := &store.Account{Platform: store.PlatformAnthropic, Type: store.AccountTypeOAuth, Credentials: store.Credentials{RefreshToken: "rt"}}
	if !r.Renews(a) {
		t.Fatal("a Claude login with a refresh token is not renewed")
	}
	for _, b := range []store.Account{
		{Platform: store.PlatformOpenAI, Type: store.AccountTypeOAuth, Credentials: store.Credentials{RefreshToken: "rt"}},
		{Platform: store.PlatformAnthropic, Type: store.AccountTypeOAuth, Credentials: store.Credentials{AccessToken: "setup"}},
		{Platform: store.PlatformAnthropic, Type: store.AccountTypeAPIKey, Credentials: store.Credentials{RefreshToken: "rt"}},
	} {
		if r.Renews(&b) {
			t.Errorf("%+v is renewed", b)
		}
	}
	both := login.NewRefresher(nil, nil, renewers(t, login.Claude(), login.OpenAI()), nil, "n1", 0)
	if !both.Renews(&store.Account{Platform: store.PlatformOpenAI, Type: store.AccountTypeOAuth, Credentials: store.Credentials{RefreshToken: "rt"}}) {
		t.Error("a ChatGPT login is not renewed by a node with the OpenAI provider")
	}
}
