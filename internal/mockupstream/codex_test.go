package mockupstream

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const codexBody = `{"model":"gpt-6.1-sol","instructions":"","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}],"stream":true,"store":false,"include":["reasoning.encrypted_content"]}`

func codexCall(t *testing.T, s *Server, l Login, body string, headers map[string]string) *http.Response {
	t.Helper()
	h := map[string]string{"X-Api-Key": "", "Anthropic-Version": "", "Authorization": "Bearer " + l.AccessToken,
		"ChatGPT-Account-ID": l.AccountID}
	for k, v := range headers {
		h[k] = v
	}
	return call(t, context.Background(), http.MethodPost, s.URL()+"/backend-api/codex/responses", "", body, h)
}

// The Codex backend serves a ChatGPT login's token with its account, streamed, and holds a
// request to the backend's constraints.
func TestCodexBackendEnforcesItsConstraints(t *testing.T) {
	s := mustStart(t, Options{})
	l := s.NewChatGPTLogin("codex@example.com")
	resp := codexCall(t, s, l, codexBody, nil)
	events, err := readSSE(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || len(events) == 0 || events[len(events)-1].name != "response.completed" {
		t.Fatalf("valid request: %d %v %v", resp.StatusCode, err, events)
	}
	for _, c := range []struct {
		body    string
		headers map[string]string
		status  int
		want    string
	}{
		{strings.Replace(codexBody, `"stream":true`, `"stream":false`, 1), nil, 400, "Stream must be set to true"},
		{strings.Replace(codexBody, `"store":false`, `"store":true`, 1), nil, 400, "Store must be set to false"},
		{strings.Replace(codexBody, `"instructions":"",`, ``, 1), nil, 400, "Instructions are required"},
		{strings.Replace(codexBody, `"stream":true`, `"stream":true,"max_output_tokens":5`, 1), nil, 400, "Unsupported parameter: max_output_tokens"},
		{codexBody, map[string]string{"ChatGPT-Account-ID": ""}, 403, "ChatGPT-Account-ID"},
		{codexBody, map[string]string{"Authorization": "Bearer sk-not-a-login"}, 401, "authentication token"},
	} {
		resp := codexCall(t, s, l, c.body, c.headers)
		if b := readAll(t, resp); resp.StatusCode != c.status || !strings.Contains(string(b), c.want) {
			t.Errorf("%s: %d %s, want %d %q", c.body, resp.StatusCode, b, c.status, c.want)
		}
	}
	s.ExpireAccess(l.AccessToken)
	resp = codexCall(t, s, l, codexBody, nil)
	if b := readAll(t, resp); resp.StatusCode != 401 || !strings.Contains(string(b), "token_expired") {
		t.Fatalf("expired token: %d %s", resp.StatusCode, b)
	}
}

// A subscription's windows come as x-codex-* headers; an exhausted window is 429
// usage_limit_reached naming its reset.
func TestCodexBackendReportsWindowsAndUsageLimit(t *testing.T) {
	s := mustStart(t, Options{Now: func() time.Time { return time.Unix(1_800_000_000, 0) }})
	l := s.NewChatGPTLogin("codex@example.com")
	if err := s.SetScript(l.AccessToken, Script{Unified: &Unified{FiveHour: 0.42, SevenDay: 0.1}}); err != nil {
		t.Fatal(err)
	}
	resp := codexCall(t, s, l, codexBody, nil)
	readAll(t, resp)
	if h := resp.Header; h.Get("x-codex-primary-used-percent") != "42" || h.Get("x-codex-primary-window-minutes") != "300" ||
		h.Get("x-codex-secondary-window-minutes") != "10080" || h.Get("x-codex-primary-reset-at") != "1800018000" {
		t.Fatalf("window headers %v", h)
	}
	if err := s.SetScript(l.AccessToken, Script{Unified: &Unified{FiveHour: 1, Reset5h: jsonDuration(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	resp = codexCall(t, s, l, codexBody, nil)
	if b := readAll(t, resp); resp.StatusCode != 429 || !strings.Contains(string(b), `"usage_limit_reached"`) ||
		!strings.Contains(string(b), `"resets_at":1800003600`) {
		t.Fatalf("exhausted window: %d %s", resp.StatusCode, b)
	}
}

// auth.openai.com: a form-encoded code exchange without state, an id_token naming the ChatGPT
// account, rotating refresh tokens, and a reused one refused with refresh_token_reused.
func TestChatGPTSignInAndRotation(t *testing.T) {
	s := mustStart(t, Options{})
	verifier := "a-verifier-of-enough-length-0123456789abcdef"
	q := url.Values{"response_type": {"code"}, "client_id": {"app_x"}, "redirect_uri": {"http://localhost:1455/auth/callback"},
		"scope": {"openid profile email offline_access"}, "code_challenge": {S256(verifier)}, "code_challenge_method": {"S256"},
		"state": {"st"}}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(s.URL() + "/oauth/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	form := func(v url.Values) (int, map[string]any) {
		resp, err := http.PostForm(s.URL()+"/oauth/token", v)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		decode(t, readAll(t, resp), &out)
		return resp.StatusCode, out
	}
	status, tok := form(url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "client_id": {"app_x"},
		"redirect_uri": {"http://localhost:1455/auth/callback"}, "code_verifier": {verifier}})
	if status != 200 || tok["id_token"] == nil || !strings.HasPrefix(tok["refresh_token"].(string), "rt_") {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	if _, ok := s.oauth.chatgptAccount(tok["access_token"].(string)); !ok {
		t.Fatal("the access token names no ChatGPT account")
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {"app_x"}}
	if status, next := form(refresh); status != 200 || next["refresh_token"] == tok["refresh_token"] {
		t.Fatalf("refresh: %d %v", status, next)
	}
	status, out := form(refresh)
	if e, _ := out["error"].(map[string]any); status != 401 || e["code"] != "refresh_token_reused" {
		t.Fatalf("reused refresh token: %d %v", status, out)
	}
}
