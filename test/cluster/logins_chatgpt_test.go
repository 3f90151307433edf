package cluster

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// chatgptTenant is a user with a key of a new OpenAI group (no accounts yet).
func (c *cluster) chatgptTenant(t *testing.T, name string) *tenant {
	t.Helper()
	tn := c.newTenant(t, name) // the user, with a balance
	var g struct {
		ID int64 `json:"id"`
	}
	testenv.MustCallJSON(t, "POST", c.entry+"/api/v1/admin/groups", c.admin, map[string]any{
		"name": "group-" + name + "-openai", "platform": store.PlatformOpenAI}, http.StatusCreated, &g)
	var k struct {
		ID  int64  `json:"id"`
		Key string `json:"key"`
	}
	testenv.MustCallJSON(t, "POST", c.entry+"/api/v1/admin/users/"+strconv.FormatInt(tn.userID, 10)+"/keys", c.admin,
		map[string]any{"name": name + "-openai", "group_id": g.ID}, http.StatusCreated, &k)
	tn.groupID, tn.keyID, tn.key = g.ID, k.ID, k.Key
	return tn
}

// codexTurn is a Codex CLI turn (0.169, custom provider): its headers and body shape.
const codexTurn = `{"model":"gpt-6.1-sol","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"say hi"}]}],` +
	`"tools":[],"tool_choice":"auto","parallel_tool_calls":false,"reasoning":{"effort":"medium","summary":"auto"},"store":false,` +
	`"stream":true,"include":["reasoning.encrypted_content"],"prompt_cache_key":"SESSION","text":{"verbosity":"low"},"client_metadata":{}}`

// sendCodex sends one Codex CLI turn through base and reports whether it was served whole.
func sendCodex(client *http.Client, base, key string, i int) bool {
	session := "019a3f6c-0000-7000-8000-" + strconv.Itoa(100000000000+i)
	req, err := http.NewRequest(http.MethodPost, base+"/v1/responses", strings.NewReader(strings.Replace(codexTurn, "SESSION", session, 1)))
	if err != nil {
		return false
	}
	for k, v := range map[string]string{"Authorization": "Bearer " + key, "Content-Type": "application/json",
		"Accept": "text/event-stream", "Originator": "codex_exec", "Session-Id": session, "Thread-Id": session,
		"X-Codex-Beta-Features": "remote_compaction_v2", "User-Agent": "codex_exec/0.169.0 (Debian 12.0.0; x86_64) xterm (codex_exec; 0.169.0)"} {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return err == nil && resp.StatusCode == http.StatusOK && strings.Contains(string(b), "event: response.completed")
}

func (c *cluster) chatgptSignInAcrossNodes(t *testing.T) {
	tn := c.chatgptTenant(t, "chatgpt-signin")
	n1, n2, n3 := c.nodes[0].base()+"/api/v1", c.nodes[1].base()+"/api/v1", c.nodes[2].base()+"/api/v1"
	var st struct {
		AuthURL string `json:"auth_url"`
		State   string `json:"state"`
	}
	testenv.MustCallJSON(t, "POST", n1+"/admin/logins/openai/start", c.admin, map[string]string{}, http.StatusOK, &st)
	if u, err := url.Parse(st.AuthURL); err != nil || u.Query().Get("code_challenge_method") != "S256" ||
		u.Query().Get("redirect_uri") != "http://localhost:1455/auth/callback" || !strings.Contains(u.Query().Get("scope"), "offline_access") {
		t.Fatalf("auth URL %q", st.AuthURL)
	}
	callback := authorizeCallback(t, st.AuthURL) // the CLI's localhost page the browser could not open
	if !strings.HasPrefix(callback, "http://localhost:1455/auth/callback?") {
		t.Fatalf("authorize: redirected to %q, want the CLI's localhost callback", callback)
	}
	var out struct {
		Account struct {
			ID               int64    `json:"id"`
			Platform         string   `json:"platform"`
			Type             string   `json:"type"`
			CredentialFields []string `json:"credential_fields"`
		} `json:"account"`
		Login struct {
			Provider, Kind, Email, Plan string
			AccountID                   string `json:"account_id"`
		} `json:"login"`
		Check struct {
			OK     bool `json:"ok"`
			Status int  `json:"status"`
		} `json:"check"`
	}
	finish := map[string]any{"code": callback, "name": "chatgpt-login", "base_url": c.mock.URL(), "group_ids": []int64{tn.groupID}}
	testenv.MustCallJSON(t, "POST", n2+"/admin/logins/openai/finish", c.admin, finish, http.StatusCreated, &out)
	if out.Account.Platform != store.PlatformOpenAI || out.Account.Type != store.AccountTypeOAuth || out.Login.Provider != "openai" ||
		out.Login.Email == "" || out.Login.Plan != "pro" || out.Login.AccountID == "" || !out.Check.OK ||
		!strings.Contains(strings.Join(out.Account.CredentialFields, ","), "refresh_token") {
		t.Fatalf("finished ChatGPT sign-in: %+v", out)
	}
	if code, b := testenv.CallJSON(t, "POST", n3+"/admin/logins/openai/finish", c.admin, finish); code != http.StatusBadRequest {
		t.Fatalf("second finish of one state: %d %s", code, b)
	}
	// A state of one provider does not finish through another's route.
	testenv.MustCallJSON(t, "POST", n1+"/admin/logins/claude/start", c.admin, map[string]string{}, http.StatusOK, &st)
	if code, b := testenv.CallJSON(t, "POST", n2+"/admin/logins/openai/finish", c.admin,
		map[string]any{"code": "c", "state": st.State}); code != http.StatusBadRequest {
		t.Fatalf("a Claude state finished as ChatGPT: %d %s", code, b)
	}
	client := newClient()
	for i, n := range c.liveNodes() {
		if !sendCodex(client, n.base(), tn.key, i) {
			t.Fatalf("a Codex turn through %s on the new login was not served", n.name)
		}
	}
}

func (c *cluster) chatgptRenewUnderLoad(t *testing.T) {
	tn := c.chatgptTenant(t, "chatgpt-renew")
	before := c.mock.OAuthStats()
	c.mock.HoldRefreshes()
	c.mock.SetAccessTTL(5 * time.Minute)
	l := c.mock.NewChatGPTLogin("chatgpt-renew@example.com")
	c.mock.SetAccessTTL(mockupstream.DefaultAccessTTL)
	var a struct {
		ID int64 `json:"id"`
	}
	testenv.MustCallJSON(t, "POST", c.nodes[0].base()+"/api/v1/admin/accounts", c.admin, map[string]any{
		"name": "chatgpt-renew", "platform": store.PlatformOpenAI, "type": store.AccountTypeOAuth, "base_url": c.mock.URL(),
		"credentials": map[string]any{"access_token": l.AccessToken, "refresh_token": l.RefreshToken, "expires_at": l.ExpiresAt,
			"extra": map[string]string{"chatgpt_account_id": l.AccountID}},
		"group_ids": []int64{tn.groupID},
	}, http.StatusCreated, &a)

	served, failed, _ := c.renewUnderTraffic(t, a.ID, before, func(client *http.Client, n *node, i int) bool {
		return sendCodex(client, n.base(), tn.key, i)
	})

	oldBefore := c.mock.Stats(l.AccessToken).Requests
	client := newClient()
	for i, n := range c.liveNodes() {
		if !sendCodex(client, n.base(), tn.key, 900000+i) {
			t.Fatalf("a Codex turn through %s after the renewal was not served", n.name)
		}
	}
	if got := c.mock.Stats(l.AccessToken).Requests; got != oldBefore {
		t.Errorf("%d requests still came with the old token a second after the renewal", got-oldBefore)
	}
	after := c.mock.OAuthStats()
	if calls, rot := after.RefreshCalls-before.RefreshCalls, after.Rotations-before.Rotations; calls != 1 || rot != 1 {
		t.Errorf("auth.openai.com saw %d refresh calls (%d rotations) for one login near expiry, want 1", calls, rot)
	}
	if failed > 0 || served == 0 {
		t.Errorf("%d of %d Codex turns under load failed", failed, served+failed)
	}
	if status, msg := c.accountView(t, a.ID); status != store.StatusActive {
		t.Errorf("account %s (%s) after the renewal", status, msg)
	}
}
