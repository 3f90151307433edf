package api_test

import (
	"testing"

	"github.com/fluxcode/fluxcode/internal/api"
	"github.com/fluxcode/fluxcode/internal/login"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
)

// A ChatGPT login created from pasted tokens (a Codex CLI's auth.json) without its account id
// gets it from the access token's claims: the Codex backend needs it on every request.
func TestChatGPTAccountIDFromTheAccessToken(t *testing.T) {
	reg, err := login.NewRegistry([]login.Config{login.OpenAI()}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *api.Options) { o.Logins = &api.Logins{Providers: reg} })
	l := mockupstream.New(mockupstream.Options{}).NewChatGPTLogin("pasted@example.com")
	var out struct {
		ID int64 `json:"id"`
	}
	e.do("POST", "/api/v1/admin/accounts", e.adminToken, map[string]any{
		"name": "pasted", "platform": "openai", "type": "oauth",
		"credentials": map[string]any{"access_token": l.AccessToken, "refresh_token": l.RefreshToken},
	}).ok(t, 201, &out)
	a, err := e.st.GetAccount(t.Context(), out.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Credentials.Extra[login.ExtraChatGPTAccountID]; got != l.AccountID {
		t.Fatalf("chatgpt_account_id %q, want %q (extra %v)", got, l.AccountID, a.Credentials.Extra)
	}
}
