package mockupstream

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func postToken(t *testing.T, base string, body map[string]string) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(base+"/v1/oauth/token", "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	raw := readAll(t, resp)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("token answer %s: %v", raw, err)
	}
	return resp.StatusCode, out
}

func TestOAuthCodeNeedsTheVerifierAndRefreshTokensRotate(t *testing.T) {
	s := mustStart(t, Options{})
	verifier := "a-verifier-of-enough-length-0123456789abcdef"
	q := url.Values{"response_type": {"code"}, "client_id": {"cid"}, "redirect_uri": {"https://cb.example/callback"},
		"scope": {"user:profile user:inference"}, "code_challenge": {S256(verifier)}, "code_challenge_method": {"S256"},
		"state": {"st-1"}}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	authorize := func() string {
		resp, err := noRedirect.Get(s.URL() + "/oauth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil || loc.Query().Get("state") != "st-1" {
			t.Fatalf("authorize: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		return loc.Query().Get("code")
	}
	exchange := map[string]string{"grant_type": "authorization_code", "code": authorize(), "state": "st-1",
		"client_id": "cid", "redirect_uri": "https://cb.example/callback", "code_verifier": "wrong"}
	if status, out := postToken(t, s.URL(), exchange); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %v", status, out)
	}
	exchange["code"], exchange["code_verifier"] = authorize(), verifier
	status, tok := postToken(t, s.URL(), exchange)
	if status != 200 || tok["refresh_token"] == nil || tok["access_token"] == nil {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	if status, out := postToken(t, s.URL(), exchange); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("code used twice: %d %v", status, out)
	}

	first := tok["refresh_token"].(string)
	refresh := map[string]string{"grant_type": "refresh_token", "refresh_token": first, "client_id": "cid"}
	status, next := postToken(t, s.URL(), refresh)
	if status != 200 || next["refresh_token"] == first {
		t.Fatalf("refresh: %d %v", status, next)
	}
	if status, out := postToken(t, s.URL(), refresh); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %v", status, out)
	}
	st := s.OAuthStats()
	if st.RefreshCalls != 2 || st.Rotations != 1 || st.CodeExchanges != 1 || st.InvalidGrants != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOAuthExpiredAccessTokenIsRefusedAndUnifiedHeadersAreSent(t *testing.T) {
	s := mustStart(t, Options{})
	l := s.NewLogin("a@example.com")
	body := `{"model":"claude-haiku-5-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
	bearer := map[string]string{"Authorization": "Bearer " + l.AccessToken}
	if resp := call(t, t.Context(), "POST", s.URL()+"/v1/messages", "", body, bearer); resp.StatusCode != 200 {
		t.Fatalf("fresh token: %d %s", resp.StatusCode, readAll(t, resp))
	} else {
		resp.Body.Close()
	}
	if err := s.SetScript(l.AccessToken, Script{Unified: &Unified{FiveHour: 0.96, SevenDay: 0.5, Reset5h: jsonDuration(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	resp := call(t, t.Context(), "POST", s.URL()+"/v1/messages", "", body, bearer)
	resp.Body.Close()
	h := resp.Header
	if h.Get("anthropic-ratelimit-unified-5h-utilization") != "0.96" || h.Get("anthropic-ratelimit-unified-status") != "allowed_warning" ||
		h.Get("anthropic-ratelimit-unified-7d-utilization") != "0.5" {
		t.Fatalf("unified headers: %v", h)
	}
	s.ExpireAccess(l.AccessToken)
	resp = call(t, t.Context(), "POST", s.URL()+"/v1/messages", "", body, bearer)
	if b := readAll(t, resp); resp.StatusCode != 401 || !strings.Contains(string(b), "authentication_error") {
		t.Fatalf("expired token: %d %s", resp.StatusCode, b)
	}
}
