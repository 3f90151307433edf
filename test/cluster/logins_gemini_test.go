package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/provider/gemini"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// TestClusterLoginsGemini: Gemini CLI ("Login with Google") logins on three nodes, Google's
// OAuth and Code Assist at the mock. A sign-in started through one node finishes through
// another (sticky cookie off: each call goes to its node directly), onboarding the user on
// Code Assist when it has no project; its traffic is served through Code Assist and looks
// like the plain Gemini API; an access token that expires mid-traffic is renewed once and
// the refused requests retried, none failing; the refresh job renews a login near expiry and
// keeps Google's refresh token, which does not rotate.
func TestClusterLoginsGemini(t *testing.T) {
	c := startLoginCluster(t, func(m string) map[string]string {
		return map[string]string{
			"GOOGLE_OAUTH_AUTHORIZE_URL": m + "/o/oauth2/v2/auth",
			"GOOGLE_OAUTH_TOKEN_URL":     m + "/token",
			"GOOGLE_OAUTH_USERINFO_URL":  m + "/oauth2/v2/userinfo",
			"GEMINI_CODE_ASSIST_URL":     m,
		}
	})
	t.Run("a sign-in started on node 1 finishes on node 2 and onboards the user", c.googleSignInAcrossNodes)
	t.Run("an access token expiring mid-traffic is renewed once and the requests retried", c.googleExpiresMidTraffic)
	t.Run("the refresh job renews a login near expiry and keeps its refresh token", c.googleRenewedByJob)
}

// newGeminiTenant is a tenant whose group serves the Gemini API.
func (c *cluster) newGeminiTenant(t *testing.T, name string) *tenant {
	tn := c.newTenant(t, name)
	testenv.MustCallJSON(t, "PATCH", fmt.Sprintf("%s/api/v1/admin/groups/%d", c.entry, tn.groupID), c.admin,
		map[string]any{"platform": store.PlatformGemini}, http.StatusOK, nil)
	return tn
}

// geminiStream sends one Gemini CLI-shaped stream request (streamGenerateContent?alt=sse,
// the CLI's headers) to a node, and reports whether a complete plain-API stream came back.
func geminiStream(client *http.Client, base, key string, n int) (ok bool, detail string) {
	body := fmt.Sprintf(`{"contents":[{"role":"user","parts":[{"text":"request %d"}]}],"systemInstruction":{"parts":[{"text":"You are an interactive CLI agent."}]}}`, n)
	req, err := http.NewRequest(http.MethodPost, base+"/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse", strings.NewReader(body))
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Goog-Api-Key", key)
	req.Header.Set("User-Agent", "GeminiCLI/0.61.0/gemini-3.8-flash (linux; x64; terminal)")
	req.Header.Set("X-Goog-Api-Client", "google-genai-sdk/1.30.0 gl-node/v20.20.2")
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return false, fmt.Sprintf("%d %s %v", resp.StatusCode, b, err)
	}
	chunks := bytes.Split(bytes.TrimSpace(b), []byte("\r\n\r\n"))
	last := bytes.TrimPrefix(chunks[len(chunks)-1], []byte("data: "))
	if bytes.Contains(b, []byte(`"response"`)) || gjson.GetBytes(last, "candidates.0.finishReason").Str != "STOP" {
		return false, "not a complete plain-API stream: " + string(b)
	}
	return true, ""
}

type googleFinished struct {
	Account struct {
		ID     int64  `json:"id"`
		Type   string `json:"type"`
		Status string `json:"status"`
	} `json:"account"`
	Login struct {
		Provider, Kind, Email, Plan string
		Extra                       map[string]string `json:"extra"`
	} `json:"login"`
	Check struct {
		OK     bool `json:"ok"`
		Status int  `json:"status"`
	} `json:"check"`
}

func (c *cluster) googleSignInAcrossNodes(t *testing.T) {
	tn := c.newGeminiTenant(t, "gsignin")
	// consent opens the sign-in page as the operator's browser would, signed in as email.
	consent := func(authURL, email string) string {
		return authorizeCallback(t, authURL+"&login_hint="+url.QueryEscape(email))
	}
	n1, n2, n3 := c.nodes[0].base()+"/api/v1", c.nodes[1].base()+"/api/v1", c.nodes[2].base()+"/api/v1"
	var st struct {
		AuthURL string `json:"auth_url"`
		State   string `json:"state"`
	}

	// A new Google account: started on node 1, the callback URL pasted on node 2, which
	// onboards the user on Code Assist's free tier (the operation polled until done).
	before := c.mock.GoogleStats()
	testenv.MustCallJSON(t, "POST", n1+"/admin/logins/gemini/start", c.admin, map[string]string{}, http.StatusOK, &st)
	if q := mustQuery(t, st.AuthURL); q.Get("access_type") != "offline" || q.Get("code_challenge_method") != "S256" || q.Get("state") != st.State {
		t.Fatalf("auth URL %s", st.AuthURL)
	}
	callback := consent(st.AuthURL, "ada@example.com")
	finish := map[string]any{"code": callback, "name": "ada-google", "base_url": c.mock.URL(), "group_ids": []int64{tn.groupID}}
	var out googleFinished
	testenv.MustCallJSON(t, "POST", n2+"/admin/logins/gemini/finish", c.admin, finish, http.StatusCreated, &out)
	project := c.mock.CodeAssistUser("ada@example.com").Project
	if out.Account.Type != store.AccountTypeOAuth || out.Login.Provider != "gemini" || out.Login.Email != "ada@example.com" ||
		out.Login.Plan != mockupstream.TierFree || project == "" || out.Login.Extra[gemini.ExtraProject] != project || !out.Check.OK {
		t.Fatalf("finished sign-in: %+v (mock project %q)", out, project)
	}
	if st := c.mock.GoogleStats(); st.CodeExchanges-before.CodeExchanges != 1 || st.OnboardCalls-before.OnboardCalls != 2 {
		t.Fatalf("sign-in calls: %+v", st)
	}
	// The state is spent: finishing again, on node 3, is refused.
	if code, b := testenv.CallJSON(t, "POST", n3+"/admin/logins/gemini/finish", c.admin, finish); code != http.StatusBadRequest {
		t.Fatalf("second finish of one state: %d %s", code, b)
	}
	// The login serves through every node, by Code Assist with the login's token: the mock
	// answers a token it issued only under the user's own project (403 otherwise).
	googleCalls := func() (n, errs int64) {
		for k, st := range c.mock.AllStats() {
			if strings.HasPrefix(k, "ya29.") {
				n, errs = n+st.Requests, errs+st.Errors
			}
		}
		return n, errs
	}
	calls, errs := googleCalls()
	client := newClient()
	for i, n := range c.liveNodes() {
		if ok, why := geminiStream(client, n.base(), tn.key, i); !ok {
			t.Fatalf("request through %s on the new login: %s", n.name, why)
		}
	}
	if n, e := googleCalls(); n-calls != int64(len(c.liveNodes())) || e != errs {
		t.Fatalf("%d Code Assist calls (%d refused) for %d requests", n-calls, e-errs, len(c.liveNodes()))
	}

	// A Workspace user who brings a project: started on node 2, the bare code and the
	// state pasted on node 3; no onboarding.
	c.mock.SetCodeAssistUser("corp@example.com", mockupstream.CodeAssistUser{Tier: mockupstream.TierStandard, Project: "acme-prod", Onboarded: true})
	testenv.MustCallJSON(t, "POST", n2+"/admin/logins/gemini/start", c.admin, map[string]string{}, http.StatusOK, &st)
	code := mustQuery(t, consent(st.AuthURL, "corp@example.com")).Get("code")
	out = googleFinished{}
	testenv.MustCallJSON(t, "POST", n3+"/admin/logins/gemini/finish", c.admin, map[string]any{"code": code, "state": st.State,
		"name": "corp-google", "base_url": c.mock.URL()}, http.StatusCreated, &out)
	if out.Login.Plan != mockupstream.TierStandard || out.Login.Extra[gemini.ExtraProject] != "acme-prod" || !out.Check.OK {
		t.Fatalf("existing project: %+v", out)
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// googleAccount creates, through node 1, a Gemini oauth account holding a fresh Google login
// of the mock (onboarded), whose access token expires after ttl.
func (c *cluster) googleAccount(t *testing.T, tn *tenant, email string, ttl time.Duration) (int64, mockupstream.Login) {
	c.mock.SetGoogleAccessTTL(ttl)
	l := c.mock.NewGoogleLogin(email)
	c.mock.SetGoogleAccessTTL(mockupstream.GoogleAccessTTL)
	var a struct {
		ID int64 `json:"id"`
	}
	testenv.MustCallJSON(t, "POST", c.nodes[0].base()+"/api/v1/admin/accounts", c.admin, map[string]any{
		"name": email, "platform": store.PlatformGemini, "type": store.AccountTypeOAuth, "base_url": c.mock.URL(),
		"credentials": map[string]any{"access_token": l.AccessToken, "refresh_token": l.RefreshToken, "expires_at": l.ExpiresAt,
			"extra": map[string]string{gemini.ExtraProject: c.mock.CodeAssistUser(email).Project}},
		"group_ids": []int64{tn.groupID},
	}, http.StatusCreated, &a)
	return a.ID, l
}

func (c *cluster) googleExpiresMidTraffic(t *testing.T) {
	tn := c.newGeminiTenant(t, "gexpire")
	id, l := c.googleAccount(t, tn, "mid@example.com", time.Hour) // far from the refresh job's window
	before := c.mock.GoogleStats()

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	sent := 0
	for w, n := range c.liveNodes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := newClient()
			for i := 0; ctx.Err() == nil; i++ {
				ok, why := geminiStream(client, n.base(), tn.key, w*100000+i)
				mu.Lock()
				sent++
				if !ok {
					failures = append(failures, n.name+": "+why)
				}
				mu.Unlock()
			}
		}()
	}
	for c.mock.Stats(l.AccessToken).Requests < 10 {
		time.Sleep(10 * time.Millisecond)
	}
	seen := c.seenKeys()
	c.mock.ExpireGoogleAccess(l.AccessToken) // Code Assist now answers 401 UNAUTHENTICATED
	c.waitVersion(t, id, 1)
	for served := false; !served; time.Sleep(10 * time.Millisecond) { // traffic goes on with the renewed token
		for k, st := range c.mock.AllStats() {
			served = served || !seen[k] && strings.HasPrefix(k, "ya29.") && st.Requests >= 10
		}
	}
	stop()
	wg.Wait()

	after := c.mock.GoogleStats()
	if calls := after.RefreshCalls - before.RefreshCalls; calls != 1 {
		t.Errorf("%d refresh calls for one expired token, want 1", calls)
	}
	if refused := c.mock.Stats(l.AccessToken).Errors; refused == 0 {
		t.Error("no request met the expired token: the test proves nothing")
	}
	if len(failures) > 0 || sent == 0 {
		t.Errorf("%d of %d requests failed: %v", len(failures), sent, failures[:min(3, len(failures))])
	}
	if status, msg := c.accountView(t, id); status != store.StatusActive {
		t.Errorf("account %s (%s) after the renewal", status, msg)
	}
	c.keepsRefreshToken(t, id)
}

// keepsRefreshToken checks that the account still holds the login's one refresh token,
// which Google does not rotate: renewing the account once more through the admin API is
// answered by the token endpoint, not refused as invalid_grant.
func (c *cluster) keepsRefreshToken(t *testing.T, id int64) {
	t.Helper()
	before := c.mock.GoogleStats()
	v := c.credentialsVersion(t, id)
	testenv.MustCallJSON(t, "POST", fmt.Sprintf("%s/api/v1/admin/accounts/%d/refresh", c.nodes[2].base(), id), c.admin, nil, http.StatusOK, nil)
	after := c.mock.GoogleStats()
	if after.RefreshCalls-before.RefreshCalls != 1 || after.InvalidGrants != before.InvalidGrants || c.credentialsVersion(t, id) != v+1 {
		t.Errorf("renewing again: %+v -> %+v", before, after)
	}
}

func (c *cluster) googleRenewedByJob(t *testing.T) {
	tn := c.newGeminiTenant(t, "gjob")
	before := c.mock.GoogleStats()
	id, _ := c.googleAccount(t, tn, "job@example.com", 5*time.Minute) // inside OAUTH_REFRESH_BEFORE
	c.waitVersion(t, id, 1)
	if calls := c.mock.GoogleStats().RefreshCalls - before.RefreshCalls; calls != 1 {
		t.Errorf("%d refresh calls for one login near expiry, want 1", calls)
	}
	c.keepsRefreshToken(t, id)
	client := newClient()
	for i, n := range c.liveNodes() {
		if ok, why := geminiStream(client, n.base(), tn.key, i); !ok {
			t.Fatalf("request through %s after the renewal: %s", n.name, why)
		}
	}
}
