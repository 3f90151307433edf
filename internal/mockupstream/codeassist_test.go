package mockupstream

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// googlePost sends a Code Assist call with a Bearer token and returns status and body.
func googlePost(t *testing.T, s *Server, path, token, body string) (int, []byte) {
	t.Helper()
	resp := call(t, context.Background(), http.MethodPost, s.URL()+path, "", body,
		map[string]string{"Authorization": "Bearer " + token, "Anthropic-Version": ""})
	return resp.StatusCode, readAll(t, resp)
}

// TestGoogleSignInAndOnboarding: Gemini CLI's sign-in against the mock: PKCE code for
// tokens (form-encoded, with the client secret), userinfo, loadCodeAssist without a
// project, onboardUser polled until done, then loadCodeAssist with the project; refresh
// tokens do not rotate, and a revoked one is invalid_grant.
func TestGoogleSignInAndOnboarding(t *testing.T) {
	s := mustStart(t, Options{})
	verifier := "a-verifier-of-enough-length-0123456789abcdef"
	q := url.Values{"response_type": {"code"}, "client_id": {"cid.apps.googleusercontent.com"}, "redirect_uri": {"https://codeassist.google.com/authcode"},
		"scope": {"https://www.googleapis.com/auth/cloud-platform"}, "code_challenge": {S256(verifier)}, "code_challenge_method": {"S256"},
		"state": {"st-1"}, "access_type": {"offline"}, "login_hint": {"ada@example.com"}}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(s.URL() + "/o/oauth2/v2/auth?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("state") != "st-1" || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %d %s", resp.StatusCode, loc)
	}
	token := func(form url.Values) (int, map[string]any) {
		resp, err := http.PostForm(s.URL()+"/token", form)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		_ = json.Unmarshal(readAll(t, resp), &out)
		return resp.StatusCode, out
	}
	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "client_id": q["client_id"],
		"client_secret": {"secret"}, "redirect_uri": q["redirect_uri"], "code_verifier": {verifier}}
	status, tok := token(exchange)
	if status != 200 || tok["refresh_token"] == nil || tok["expires_in"].(float64) != 3599 {
		t.Fatalf("exchange: %d %v", status, tok)
	}
	if status, out := token(exchange); status != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("code used twice: %d %v", status, out)
	}
	access, refresh := tok["access_token"].(string), tok["refresh_token"].(string)
	resp = call(t, context.Background(), http.MethodGet, s.URL()+"/oauth2/v2/userinfo", "", "", map[string]string{"Authorization": "Bearer " + access})
	if b := readAll(t, resp); gjson.GetBytes(b, "email").Str != "ada@example.com" {
		t.Fatalf("userinfo: %s", b)
	}

	status, b := googlePost(t, s, "/v1internal:loadCodeAssist", access, `{"metadata":{"pluginType":"GEMINI"}}`)
	if status != 200 || gjson.GetBytes(b, "currentTier").Exists() || gjson.GetBytes(b, `allowedTiers.#(isDefault==true).id`).Str != TierFree {
		t.Fatalf("load before onboarding: %d %s", status, b)
	}
	onboard := `{"tierId":"free-tier","metadata":{"pluginType":"GEMINI"}}`
	status, b = googlePost(t, s, "/v1internal:onboardUser", access, onboard)
	if status != 200 || gjson.GetBytes(b, "done").Bool() || gjson.GetBytes(b, "name").Str == "" {
		t.Fatalf("onboard: %d %s", status, b)
	}
	status, b = googlePost(t, s, "/v1internal:onboardUser", access, onboard)
	project := gjson.GetBytes(b, "response.cloudaicompanionProject.id").Str
	if status != 200 || !gjson.GetBytes(b, "done").Bool() || project == "" {
		t.Fatalf("onboard poll: %d %s", status, b)
	}
	_, b = googlePost(t, s, "/v1internal:loadCodeAssist", access, `{}`)
	if gjson.GetBytes(b, "currentTier.id").Str != TierFree || gjson.GetBytes(b, "cloudaicompanionProject").Str != project {
		t.Fatalf("load after onboarding: %s", b)
	}

	// Generation: the envelope in, each chunk wrapped out; the project must be the user's.
	gen := `{"model":"gemini-3.8-flash","project":"` + project + `","user_prompt_id":"p1","request":{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}}`
	status, b = googlePost(t, s, "/v1internal:streamGenerateContent?alt=sse", access, gen)
	if status != 200 || strings.Count(string(b), `data: {"response":{"candidates"`) < 1 || !strings.Contains(string(b), `"traceId"`) ||
		!strings.Contains(string(b), `"finishReason":"STOP"`) {
		t.Fatalf("stream: %d %s", status, b)
	}
	status, b = googlePost(t, s, "/v1internal:generateContent", access, gen)
	if status != 200 || gjson.GetBytes(b, "response.usageMetadata.promptTokenCount").Int() == 0 || gjson.GetBytes(b, "response.modelVersion").Str != "gemini-3.8-flash" {
		t.Fatalf("generate: %d %s", status, b)
	}
	if status, b = googlePost(t, s, "/v1internal:countTokens", access, `{"request":{"model":"models/gemini-3.8-flash","contents":[{"parts":[{"text":"hi"}]}]}}`); status != 200 ||
		gjson.GetBytes(b, "totalTokens").Int() == 0 {
		t.Fatalf("count: %d %s", status, b)
	}
	if status, b = googlePost(t, s, "/v1internal:generateContent", access, strings.Replace(gen, project, "someone-elses", 1)); status != 403 ||
		gjson.GetBytes(b, "error.status").Str != "PERMISSION_DENIED" {
		t.Fatalf("another project: %d %s", status, b)
	}

	// Refresh: a new access token, no new refresh token; the old one still works.
	status, again := token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": q["client_id"], "client_secret": {"secret"}})
	if status != 200 || again["refresh_token"] != nil || again["access_token"] == access {
		t.Fatalf("refresh: %d %v", status, again)
	}
	if status, _ := token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": q["client_id"], "client_secret": {"secret"}}); status != 200 {
		t.Fatalf("second refresh with the same token: %d", status)
	}
	s.ExpireGoogleAccess(access)
	if status, b = googlePost(t, s, "/v1internal:generateContent", access, gen); status != 401 || gjson.GetBytes(b, "error.status").Str != "UNAUTHENTICATED" {
		t.Fatalf("expired token: %d %s", status, b)
	}
	if status, _ = googlePost(t, s, "/v1internal:generateContent", again["access_token"].(string), gen); status != 200 {
		t.Fatalf("refreshed token: %d", status)
	}
	s.RevokeGoogleLogin(refresh)
	if status, out := token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": q["client_id"], "client_secret": {"secret"}}); status != 400 ||
		out["error"] != "invalid_grant" {
		t.Fatalf("revoked: %d %v", status, out)
	}
	if st := s.GoogleStats(); st.CodeExchanges != 1 || st.RefreshCalls != 3 || st.InvalidGrants != 2 || st.OnboardCalls != 2 || st.LoadCalls != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestCodeAssistExistingProject: a user who brings a project (standard tier) is answered
// with it at once, and NewGoogleLogin gives a login ready for traffic.
func TestCodeAssistExistingProject(t *testing.T) {
	s := mustStart(t, Options{})
	s.SetCodeAssistUser("corp@example.com", CodeAssistUser{Tier: TierStandard, Project: "acme-prod", Onboarded: true})
	l := s.NewGoogleLogin("corp@example.com")
	_, b := googlePost(t, s, "/v1internal:loadCodeAssist", l.AccessToken, `{"cloudaicompanionProject":"acme-prod"}`)
	if gjson.GetBytes(b, "currentTier.id").Str != TierStandard || gjson.GetBytes(b, "cloudaicompanionProject").Str != "acme-prod" {
		t.Fatalf("load: %s", b)
	}
	fresh := s.NewGoogleLogin("new@example.com")
	if u := s.CodeAssistUser("new@example.com"); !u.Onboarded || u.Project == "" || fresh.RefreshToken == "" {
		t.Fatalf("new login: %+v %+v", u, fresh)
	}
	if status, _ := googlePost(t, s, "/v1internal:loadCodeAssist", "ya29.unknown", `{}`); status != 401 {
		t.Fatalf("unknown token: %d", status)
	}
}

// TestGoogleControl: the Google login server driven over HTTP, as cmd/mockupstream's users
// do: a login created, its token expired, the counters read.
func TestGoogleControl(t *testing.T) {
	s := mustStart(t, Options{})
	post := func(path, body string) []byte {
		resp, err := http.Post(s.URL()+"/_mock/google/"+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b := readAll(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		return b
	}
	post("user?email=corp%40example.com", `{"tier":"standard-tier","project":"acme","onboarded":true}`)
	b := post("login?email=corp%40example.com", "")
	token := gjson.GetBytes(b, "login.access_token").Str
	if gjson.GetBytes(b, "project").Str != "acme" || token == "" {
		t.Fatalf("login: %s", b)
	}
	gen := `{"model":"m","project":"acme","request":{"contents":[{"parts":[{"text":"hi"}]}]}}`
	if status, _ := googlePost(t, s, "/v1internal:generateContent", token, gen); status != 200 {
		t.Fatalf("generate: %d", status)
	}
	post("expire?token="+url.QueryEscape(token), "")
	if status, _ := googlePost(t, s, "/v1internal:generateContent", token, gen); status != 401 {
		t.Fatalf("expired: %d", status)
	}
	resp, err := http.Get(s.URL() + "/_mock/google/stats")
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp); !json.Valid(b) || !strings.Contains(string(b), `"refresh_calls":0`) {
		t.Fatalf("stats: %s", b)
	}
}
