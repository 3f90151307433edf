package cluster

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// refreshLockTTL is the nodes' OAUTH_REFRESH_LOCK_TTL: how long a killed renewer's lock
// lasts.
const refreshLockTTL = 3 * time.Second

// TestClusterLogins: subscription logins (Claude, ChatGPT) on three nodes, their OAuth
// endpoints at the mock.
// A sign-in started through one node finishes through another; a login near expiry under
// load is renewed by one refresh call and every node switches to the new token; a revoked
// login is marked with the reason; a node killed while renewing costs no login.
func TestClusterLogins(t *testing.T) {
	c := startLoginCluster(t, func(m string) map[string]string {
		return map[string]string{
			"CLAUDE_OAUTH_AUTHORIZE_URL": m + "/oauth/authorize",
			"CLAUDE_OAUTH_TOKEN_URL":     m + "/v1/oauth/token",
			"CLAUDE_OAUTH_PROFILE_URL":   m + "/api/oauth/profile",
			"OPENAI_OAUTH_AUTHORIZE_URL": m + "/oauth/authorize",
			"OPENAI_OAUTH_TOKEN_URL":     m + "/oauth/token",
			"OAUTH_REFRESH_LOCK_TTL":     refreshLockTTL.String(),
		}
	})
	t.Run("a sign-in started on node 1 finishes on node 2", c.signInAcrossNodes)
	t.Run("a login near expiry under load is renewed once and every node uses the new token", c.renewUnderLoad)
	t.Run("a revoked login is marked in error with the reason", c.revokedLogin)
	t.Run("an account given only a refresh token is renewed at creation", c.refreshTokenOnly)
	t.Run("a ChatGPT sign-in started on node 1 finishes on node 2 and serves Codex through every node", c.chatgptSignInAcrossNodes)
	t.Run("a ChatGPT login near expiry under load is renewed once and every node uses the new token", c.chatgptRenewUnderLoad)
	t.Run("a node killed while renewing costs no login", c.renewerKilled)
}

// startLoginCluster starts the cluster of the login tests: every node signs in against the
// mock (endpoints(mock URL) names where) and runs the refresh job every 300 ms for logins
// that expire within 10 minutes.
func startLoginCluster(t *testing.T, endpoints func(mock string) map[string]string) *cluster {
	return startConfigured(&cluster{t: t, bin: buildFluxcode(t), nodeEnv: func(c *cluster) map[string]string {
		env := endpoints(c.mock.URL())
		env["OAUTH_REFRESH_INTERVAL"], env["OAUTH_REFRESH_BEFORE"] = "300ms", "10m"
		return env
	}})
}

func (c *cluster) signInAcrossNodes(t *testing.T) {
	tn := c.newTenant(t, "signin")
	type finished struct {
		Account struct {
			ID               int64    `json:"id"`
			Type             string   `json:"type"`
			Status           string   `json:"status"`
			CredentialFields []string `json:"credential_fields"`
		} `json:"account"`
		Login struct{ Kind, Email, Plan string } `json:"login"`
		Check struct {
			OK     bool `json:"ok"`
			Status int  `json:"status"`
		} `json:"check"`
	}
	n1, n2, n3 := c.nodes[0].base()+"/api/v1", c.nodes[1].base()+"/api/v1", c.nodes[2].base()+"/api/v1"

	// A full login: started on node 1, the callback URL pasted on node 2.
	var st struct {
		AuthURL string `json:"auth_url"`
		State   string `json:"state"`
	}
	testenv.MustCallJSON(t, "POST", n1+"/admin/logins/claude/start", c.admin, map[string]string{"kind": "oauth"}, http.StatusOK, &st)
	callback := authorizeCallback(t, st.AuthURL)
	var out finished
	finish := map[string]any{"code": callback, "name": "max-login", "base_url": c.mock.URL(), "group_ids": []int64{tn.groupID}}
	testenv.MustCallJSON(t, "POST", n2+"/admin/logins/claude/finish", c.admin, finish, http.StatusCreated, &out)
	if out.Account.Type != store.AccountTypeOAuth || out.Login.Email == "" || out.Login.Plan != "claude_max" ||
		!out.Check.OK || !strings.Contains(strings.Join(out.Account.CredentialFields, ","), "refresh_token") {
		t.Fatalf("finished sign-in: %+v", out)
	}
	// The state is spent: finishing again, on node 3, is refused.
	if code, b := testenv.CallJSON(t, "POST", n3+"/admin/logins/claude/finish", c.admin, finish); code != http.StatusBadRequest {
		t.Fatalf("second finish of one state: %d %s", code, b)
	}
	// The account serves through every node.
	for i, n := range c.liveNodes() {
		if o := send(context.Background(), newClient(), n.base(), tn.key, quick, i, nil); !o.complete {
			t.Fatalf("request through %s on the new login: %+v", n.name, o)
		}
	}

	// A setup token: started on node 2, Claude's "code#state" pasted on node 3.
	testenv.MustCallJSON(t, "POST", n2+"/admin/logins/claude/start", c.admin, map[string]string{"kind": "setup_token"}, http.StatusOK, &st)
	q := mustQuery(t, authorizeCallback(t, st.AuthURL))
	finish = map[string]any{"code": q.Get("code") + "#" + q.Get("state"), "name": "setup-token", "base_url": c.mock.URL()}
	out = finished{}
	testenv.MustCallJSON(t, "POST", n3+"/admin/logins/claude/finish", c.admin, finish, http.StatusCreated, &out)
	if out.Login.Kind != "setup_token" || strings.Contains(strings.Join(out.Account.CredentialFields, ","), "refresh_token") || !out.Check.OK {
		t.Fatalf("setup token: %+v", out)
	}
}

// authorizeCallback opens a login's authorization URL as the operator's browser would,
// without following the provider's (the mock's) answer, and returns where it redirects, as
// the provider wrote it: the callback URL, carrying the code, that the operator pastes back
// on a node. It fails t unless the answer is a redirect (302) to a URL.
func authorizeCallback(t *testing.T, authURL string) string {
	t.Helper()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if _, err := url.Parse(loc); resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("authorize: %d %q", resp.StatusCode, loc)
	}
	return loc
}

// loginAccount creates, through node 1, an OAuth account holding a fresh login of the mock
// whose access token expires after ttl.
func (c *cluster) loginAccount(t *testing.T, tn *tenant, name string, ttl time.Duration) (int64, mockupstream.Login) {
	c.mock.SetAccessTTL(ttl)
	l := c.mock.NewLogin(name + "@example.com")
	c.mock.SetAccessTTL(mockupstream.DefaultAccessTTL)
	var a struct {
		ID int64 `json:"id"`
	}
	testenv.MustCallJSON(t, "POST", c.nodes[0].base()+"/api/v1/admin/accounts", c.admin, map[string]any{
		"name": name, "platform": store.PlatformAnthropic, "type": store.AccountTypeOAuth, "base_url": c.mock.URL(),
		"credentials": map[string]any{"access_token": l.AccessToken, "refresh_token": l.RefreshToken, "expires_at": l.ExpiresAt},
		"group_ids":   []int64{tn.groupID},
	}, http.StatusCreated, &a)
	return a.ID, l
}

// credentialsVersion reads the account's version from the database.
func (c *cluster) credentialsVersion(t *testing.T, id int64) int64 {
	var v int64
	if err := c.db.QueryRow(context.Background(), "SELECT credentials_version FROM accounts WHERE id = $1", id).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// waitVersion waits until the account's credentials are at version want.
func (c *cluster) waitVersion(t *testing.T, id, want int64) time.Time {
	for range 600 {
		if c.credentialsVersion(t, id) >= want {
			return time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("account %d's credentials never reached version %d", id, want)
	return time.Time{}
}

// seenKeys are the credentials the mock has seen so far.
func (c *cluster) seenKeys() map[string]bool {
	seen := map[string]bool{}
	for k := range c.mock.AllStats() {
		seen[k] = true
	}
	return seen
}

// newToken is the access token the mock has seen besides old (what it had seen before a
// renewal): the login's renewed one.
func (c *cluster) newToken(t *testing.T, old map[string]bool) string {
	for k := range c.mock.AllStats() {
		if strings.HasPrefix(k, "sk-ant-oat01-") && !old[k] {
			return k
		}
	}
	t.Fatal("the mock never saw a renewed access token")
	return ""
}

func (c *cluster) accountView(t *testing.T, id int64) (status, message string) {
	var a struct {
		Status       string `json:"status"`
		ErrorMessage string `json:"error_message"`
	}
	testenv.MustCallJSON(t, "GET", c.entry+"/api/v1/admin/accounts/"+strconv.FormatInt(id, 10), c.admin, nil, http.StatusOK, &a)
	return a.Status, a.ErrorMessage
}

func (c *cluster) renewUnderLoad(t *testing.T) {
	tn := c.newTenant(t, "renew")
	before := c.mock.OAuthStats()
	c.mock.HoldRefreshes() // the renewal waits at the token endpoint while traffic runs
	id, l := c.loginAccount(t, tn, "renew", 5*time.Minute)

	served, failed, seen := c.renewUnderTraffic(t, id, before, func(client *http.Client, n *node, i int) bool {
		return send(context.Background(), client, n.base(), tn.key, quick, i, nil).complete
	})

	// From a second after the new token was stored, every node sends the new token only.
	renewed := c.newToken(t, seen)
	oldBefore, newBefore := c.mock.Stats(l.AccessToken).Requests, c.mock.Stats(renewed).Requests
	client := newClient()
	for i, n := range c.liveNodes() {
		for j := range 5 {
			if o := send(context.Background(), client, n.base(), tn.key, quick, 900000+i*10+j, nil); !o.complete {
				t.Fatalf("request through %s after the renewal: %+v", n.name, o)
			}
		}
	}
	if got := c.mock.Stats(l.AccessToken).Requests; got != oldBefore {
		t.Errorf("%d requests still came with the old token a second after the renewal", got-oldBefore)
	}
	if got := c.mock.Stats(renewed).Requests - newBefore; got != int64(5*len(c.liveNodes())) {
		t.Errorf("%d requests with the new token, want %d", got, 5*len(c.liveNodes()))
	}

	after := c.mock.OAuthStats()
	if calls, rot := after.RefreshCalls-before.RefreshCalls, after.Rotations-before.Rotations; calls != 1 || rot != 1 {
		t.Errorf("the token endpoint saw %d refresh calls (%d rotations) for one login near expiry, want 1", calls, rot)
	}
	if failed > 0 || served == 0 {
		t.Errorf("%d of %d requests under load failed", failed, served+failed)
	}
	if status, msg := c.accountView(t, id); status != store.StatusActive {
		t.Errorf("account %s (%s) after the renewal", status, msg)
	}
	var jobs struct {
		Items []struct{ Name, Node, Result string } `json:"items"`
	}
	testenv.MustCallJSON(t, "GET", c.entry+"/api/v1/admin/jobs", c.admin, nil, http.StatusOK, &jobs)
	refreshJob := false
	for _, j := range jobs.Items {
		refreshJob = refreshJob || j.Name == "oauth-refresh" && j.Node != ""
	}
	if !refreshJob {
		t.Errorf("no run of the refresh job among %+v", jobs.Items)
	}
}

func (c *cluster) revokedLogin(t *testing.T) {
	tn := c.newTenant(t, "revoked")
	c.mock.HoldRefreshes()
	id, l := c.loginAccount(t, tn, "revoked", 5*time.Minute)
	c.mock.RevokeLogin(l.RefreshToken)
	c.mock.ReleaseRefreshes()
	for range 400 {
		if status, msg := c.accountView(t, id); status == store.StatusError {
			if !strings.Contains(msg, "invalid_grant") {
				t.Fatalf("error message %q does not say why", msg)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("a revoked login was never marked in error")
}

func (c *cluster) renewerKilled(t *testing.T) {
	tn := c.newTenant(t, "killed")
	before := c.mock.OAuthStats()
	c.mock.HoldRefreshes()
	id, _ := c.loginAccount(t, tn, "killed", 5*time.Minute)
	for c.mock.OAuthStats().RefreshCalls == before.RefreshCalls {
		time.Sleep(20 * time.Millisecond)
	}
	// The node whose renewal waits at the token endpoint holds the account's lock.
	ctx := context.Background()
	keys, err := c.rdb.Keys(ctx, "*lease:login:refresh:"+strconv.FormatInt(id, 10)+"}").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("lock keys %v: %v", keys, err)
	}
	owner, err := c.rdb.Get(ctx, keys[0]).Result()
	if err != nil {
		t.Fatal(err)
	}
	var holder *node
	for _, n := range c.nodes {
		if strings.HasPrefix(owner, n.name+"/") {
			holder = n
		}
	}
	if holder == nil {
		t.Fatalf("no node owns the lock %q", owner)
	}
	holder.kill(t)
	for c.mock.OAuthStats().Abandoned == before.Abandoned {
		time.Sleep(20 * time.Millisecond)
	}
	seen := c.seenKeys()
	c.mock.ReleaseRefreshes()
	c.waitVersion(t, id, 1)

	after := c.mock.OAuthStats()
	if rot, bad := after.Rotations-before.Rotations, after.InvalidGrants-before.InvalidGrants; rot != 1 || bad != 0 {
		t.Errorf("after the renewer was killed: %d rotations, %d invalid grants; want 1 and 0", rot, bad)
	}
	if status, msg := c.accountView(t, id); status != store.StatusActive {
		t.Errorf("account %s (%s) after its renewer was killed", status, msg)
	}
	for i, n := range c.liveNodes() {
		if o := send(ctx, newClient(), n.base(), tn.key, quick, 800000+i, nil); !o.complete {
			t.Fatalf("request through %s after the renewal: %+v", n.name, o)
		}
	}
	if c.mock.Stats(c.newToken(t, seen)).Requests == 0 {
		t.Error("no request used the renewed token")
	}
}

func (c *cluster) refreshTokenOnly(t *testing.T) {
	api := c.nodes[1].base() + "/api/v1/admin/accounts"
	l := c.mock.NewLogin("only-refresh@example.com")
	create := func(refresh string) (int, []byte) {
		return testenv.CallJSON(t, "POST", api, c.admin, map[string]any{
			"name": "only-refresh-" + refresh[len(refresh)-6:], "platform": store.PlatformAnthropic, "type": store.AccountTypeOAuth,
			"base_url": c.mock.URL(), "credentials": map[string]any{"refresh_token": refresh},
		})
	}
	code, b := create(l.RefreshToken)
	var a struct {
		CredentialFields []string   `json:"credential_fields"`
		ExpiresAt        *time.Time `json:"credentials_expires_at"`
	}
	if err := json.Unmarshal(b, &a); code != http.StatusCreated || err != nil ||
		!strings.Contains(strings.Join(a.CredentialFields, ","), "access_token") || a.ExpiresAt == nil {
		t.Fatalf("create with a refresh token alone: %d %s", code, b)
	}
	// The one it was given is now rotated away: a second account from it is refused.
	if code, b := create(l.RefreshToken); code != http.StatusBadRequest || !strings.Contains(string(b), "refresh_token") {
		t.Fatalf("create with a dead refresh token: %d %s", code, b)
	}
}

// renewUnderTraffic sends requests (send) through every live node while the refresh of
// account id, held at the token endpoint since before, waits; then lets it through and keeps
// the traffic going until a second after the new token was stored. It returns how many
// requests were served and failed, and the credentials the mock had seen before the release.
func (c *cluster) renewUnderTraffic(t *testing.T, id int64, before mockupstream.OAuthStats,
	send func(client *http.Client, n *node, i int) bool) (served, failed int, seen map[string]bool) {
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w, n := range c.liveNodes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := newClient()
			for i := 0; ctx.Err() == nil; i++ {
				ok := send(client, n, w*100000+i)
				mu.Lock()
				if ok {
					served++
				} else {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	for c.mock.OAuthStats().RefreshCalls == before.RefreshCalls {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // more load, and more refresh job ticks, while the call is held
	seen = c.seenKeys()
	c.mock.ReleaseRefreshes()
	stored := c.waitVersion(t, id, 1)
	time.Sleep(time.Until(stored.Add(time.Second)))
	stop()
	wg.Wait()
	return served, failed, seen
}
