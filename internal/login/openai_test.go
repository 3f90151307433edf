package login

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/coord/memory"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
)

// openAIOnMock is the ChatGPT login configuration pointed at a started mock's OAuth
// endpoints; the mock closes with the test.
func openAIOnMock(t *testing.T) (*mockupstream.Server, Config) {
	t.Helper()
	m := mockupstream.New(mockupstream.Options{})
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	cfg := OpenAI()
	cfg.AuthorizeURL, cfg.TokenURL = m.URL()+"/oauth/authorize", m.URL()+"/oauth/token"
	return m, cfg
}

// TestOpenAISignInAndRotation: the ChatGPT sign-in (form-encoded exchange, no state) names
// the ChatGPT account, e-mail and plan from the id_token; a refresh keeps naming them; the
// rotated-away refresh token (OpenAI's 401 refresh_token_reused) and a revoked one are
// ErrInvalidGrant, so the refresher's rules for a dead token apply to ChatGPT logins too.
func TestOpenAISignInAndRotation(t *testing.T) {
	m, cfg := openAIOnMock(t)
	c := NewClient(cfg, nil, nil)
	ctx := context.Background()

	tok := signIn(t, c, "")
	id := tok.Extra[ExtraChatGPTAccountID]
	if id == "" || tok.AccountID != id || tok.Email == "" || tok.Plan != mockupstream.ChatGPTPlan || tok.IDToken == "" ||
		tok.RefreshToken == "" || tok.ExpiresAt.IsZero() {
		t.Fatalf("signed-in token %+v", tok)
	}
	next, err := c.Refresh(ctx, tok.RefreshToken)
	if err != nil || next.Extra[ExtraChatGPTAccountID] != id || next.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %+v %v", next, err)
	}
	if _, err := c.Refresh(ctx, tok.RefreshToken); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("reused refresh token: %v", err)
	}
	m.RevokeLogin(next.RefreshToken)
	if _, err := c.Refresh(ctx, next.RefreshToken); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("revoked refresh token: %v", err)
	}
}

// A sign-in whose code is exchanged but whose discovery fails is ErrDiscovery, with the
// provider's reason, so the operator learns why (not that an endpoint was unreachable).
func TestDiscoveryFailureSaysWhy(t *testing.T) {
	_, cfg := openAIOnMock(t)
	cfg.Discover = func(context.Context, *Client, *Token) error {
		return errors.New("this login needs a project of its own")
	}
	f := NewFlows(NewClient(cfg, nil, nil), memory.New(), func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] })
	st, err := f.Start(context.Background(), KindOAuth)
	if err != nil {
		t.Fatal(err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(st.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	code, state, err := ParseCode(resp.Header.Get("Location"), "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Finish(context.Background(), code, state)
	if !errors.Is(err, ErrDiscovery) || !strings.Contains(err.Error(), "a project of its own") {
		t.Fatalf("finish: %v", err)
	}
}
