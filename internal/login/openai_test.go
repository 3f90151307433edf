package login

import (
	"context"
	"errors"
	"testing"

	"github.com/fluxcode/fluxcode/internal/mockupstream"
)

// TestOpenAISignInAndRotation: the ChatGPT sign-in (form-encoded exchange, no state) names
// the ChatGPT account, e-mail and plan from the id_token; a refresh keeps naming them; the
// rotated-away refresh token (OpenAI's 401 refresh_token_reused) and a revoked one are
// ErrInvalidGrant, so the refresher's rules for a dead token apply to ChatGPT logins too.
func TestOpenAISignInAndRotation(t *testing.T) {
	m := mockupstream.New(mockupstream.Options{})
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cfg := OpenAI()
	cfg.AuthorizeURL, cfg.TokenURL = m.URL()+"/oauth/authorize", m.URL()+"/oauth/token"
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
