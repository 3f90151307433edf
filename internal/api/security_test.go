package api_test

// Regression tests of the authentication and authorisation findings of an outside review:
// each reproduces the attack and would pass it on the code before the fix.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/api"
	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/httpx"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// hashes counts the password hashes one or more gates ran, and the most at once.
type hashes struct {
	total, inFlight, peak atomic.Int64
	// hold, when not nil, keeps every hash in its slot until it is closed.
	hold chan struct{}
}

// gate returns a password gate of max slots that reports to h.
func (h *hashes) gate(max int, wait time.Duration) *secret.PasswordGate {
	return secret.NewPasswordGate(secret.GateOptions{Max: max, Wait: wait, OnHash: func(int) {
		n := h.inFlight.Add(1)
		defer h.inFlight.Add(-1)
		h.total.Add(1)
		for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
		}
		if h.hold != nil {
			<-h.hold
		}
	}})
}

// loginFrom sends a login as if from the client address ip.
func (e *env) loginFrom(ip, email, password string) *resp {
	e.t.Helper()
	body, err := json.Marshal(map[string]string{"email": email, "password": password})
	if err != nil {
		e.t.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/api/v1/auth/login", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = ip + ":40000"
	if strings.Contains(ip, ":") {
		req.RemoteAddr = "[" + ip + "]:40000"
	}
	return e.doRequest(req)
}

// tally counts answers by status and checks every refusal carries Retry-After.
func tally(t *testing.T, answers []*resp) map[int]int {
	t.Helper()
	byStatus := map[int]int{}
	for _, r := range answers {
		byStatus[r.status]++
		if (r.status == 429 || r.status == 503) && r.header.Get("Retry-After") == "" {
			t.Errorf("a %d without Retry-After: %s", r.status, r.body)
		}
	}
	return byStatus
}

// Issue 9 fix 3: parallel logins with random emails each cost an argon2id hash (19 MiB).
// At most Max run at once; the excess is refused with 503 and Retry-After instead of
// queueing without bound.
func TestPasswordHashingIsBounded(t *testing.T) {
	const max, parallel = 3, 20
	h := &hashes{}
	gate := h.gate(max, 50*time.Millisecond)
	e := newEnv(t, func(o *api.Options) { o.Passwords = gate; o.LoginMaxPerAddress = 1000 })
	h.hold = make(chan struct{})
	h.total.Store(0)

	answers := make(chan *resp, parallel)
	for i := range parallel {
		go func() {
			answers <- e.loginFrom(fmt.Sprintf("127.0.%d.%d", i/200, i%200+1), fmt.Sprintf("random-%d@example.com", i), "guess-password")
		}()
	}
	// The excess answers while max hashes are held in their slots.
	var got []*resp
	deadline := time.After(30 * time.Second)
	for len(got) < parallel-max {
		select {
		case r := <-answers:
			got = append(got, r)
		case <-deadline:
			t.Fatalf("only %d of the %d excess logins were answered while the slots were held", len(got), parallel-max)
		}
	}
	// A holder counts itself just after taking its slot: wait for the last one to.
	for end := time.Now().Add(10 * time.Second); h.inFlight.Load() != max && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	if n := h.inFlight.Load(); n != max {
		t.Errorf("%d hashes hold a slot, want %d", n, max)
	}
	close(h.hold)
	for len(got) < parallel {
		got = append(got, <-answers)
	}
	if p := h.peak.Load(); p > max {
		t.Errorf("%d hashes ran at once, want at most %d", p, max)
	}
	if by := tally(t, got); by[503] != parallel-max || by[401] != max {
		t.Errorf("answers by status = %v, want %d × 503 and %d × 401", by, parallel-max, max)
	}
	for _, r := range got {
		if r.status == 503 {
			r.wantError(t, 503, "unavailable", "")
			break
		}
	}
	if n := h.total.Load(); n != max {
		t.Errorf("%d hashes ran, want %d", n, max)
	}
}

// Issue 9 fix 5: 30 parallel wrong passwords for one email from one address all passed a
// check made before any failure was counted. Attempts are now counted before the password is
// verified: exactly the limit is verified, the rest get 429 with Retry-After.
func TestLoginThrottleCountsBeforeVerifying(t *testing.T) {
	const limit, parallel = 10, 30
	h := &hashes{}
	e := newEnv(t, func(o *api.Options) {
		o.Passwords = h.gate(parallel, time.Minute)
		o.LoginMaxFailures = limit
		o.LoginWindow = time.Hour
	})
	e.newUser("victim@example.com")
	before := h.total.Load()
	answers := parallelLogins(parallel, func(int) *resp {
		return e.loginFrom("127.0.0.7", "victim@example.com", "wrong-password")
	})
	if by := tally(t, answers); by[401] != limit || by[429] != parallel-limit {
		t.Errorf("answers by status = %v, want %d × 401 and %d × 429", by, limit, parallel-limit)
	}
	if n := h.total.Load() - before; n != limit {
		t.Errorf("%d passwords were verified, want exactly %d", n, limit)
	}
	// Locked for the window, even with the right password.
	r := e.loginFrom("127.0.0.7", "victim@example.com", "user-password-1")
	r.wantError(t, 429, "rate_limited", "")
	if r.header.Get("Retry-After") != "3600" {
		t.Errorf("Retry-After = %q, want 3600", r.header.Get("Retry-After"))
	}
}

// Issue 9 fix 5: rotating addresses or emails was never throttled, as the counter was per
// (email, address) pair. Each is now limited on its own.
func TestLoginThrottlePerEmailAndPerAddress(t *testing.T) {
	t.Run("RotatingAddresses", func(t *testing.T) {
		e := newEnv(t, func(o *api.Options) { o.LoginMaxFailures = 4 })
		e.newUser("victim@example.com")
		for i := range 4 {
			e.loginFrom(fmt.Sprintf("127.0.1.%d", i+1), "victim@example.com", "wrong-password").wantError(t, 401, "unauthenticated", "")
		}
		e.loginFrom("127.0.1.99", "victim@example.com", "wrong-password").wantError(t, 429, "rate_limited", "")
		// Other emails are untouched.
		e.loginFrom("127.0.1.99", adminEmail, adminPassword).ok(t, 200, nil)
	})
	t.Run("RotatingEmails", func(t *testing.T) {
		e := newEnv(t, func(o *api.Options) { o.LoginMaxPerAddress = 4 })
		for i := range 4 {
			e.loginFrom("127.0.2.1", fmt.Sprintf("guess-%d@example.com", i), "wrong-password").wantError(t, 401, "unauthenticated", "")
		}
		e.loginFrom("127.0.2.1", "guess-99@example.com", "wrong-password").wantError(t, 429, "rate_limited", "")
		e.loginFrom("127.0.2.1", adminEmail, adminPassword).wantError(t, 429, "rate_limited", "")
		// Another address is not locked.
		e.loginFrom("127.0.2.2", adminEmail, adminPassword).ok(t, 200, nil)
	})
	t.Run("IPv6CountsPer64", func(t *testing.T) {
		e := newEnv(t, func(o *api.Options) { o.LoginMaxPerAddress = 3 })
		for i := range 3 {
			e.loginFrom(fmt.Sprintf("fd00:1:2:3::%x", i+1), fmt.Sprintf("guess-%d@example.com", i), "wrong-password").
				wantError(t, 401, "unauthenticated", "")
		}
		e.loginFrom("fd00:1:2:3:ffff::1", "guess-9@example.com", "wrong-password").wantError(t, 429, "rate_limited", "")
		e.loginFrom("fd00:1:2:4::1", adminEmail, adminPassword).ok(t, 200, nil)
	})
	t.Run("SuccessGivesBackTheEmailsFailures", func(t *testing.T) {
		e := newEnv(t, func(o *api.Options) { o.LoginMaxFailures = 3 })
		e.newUser("u@example.com")
		for range 2 {
			e.loginFrom("127.0.3.1", "u@example.com", "wrong-password").wantError(t, 401, "unauthenticated", "")
		}
		e.loginFrom("127.0.3.1", "u@example.com", "user-password-1").ok(t, 200, nil)
		for range 3 {
			e.loginFrom("127.0.3.1", "u@example.com", "wrong-password").wantError(t, 401, "unauthenticated", "")
		}
		e.loginFrom("127.0.3.1", "u@example.com", "wrong-password").wantError(t, 429, "rate_limited", "")
	})
}

// A stolen token must not turn the password check of /me/password into an unthrottled oracle.
func TestCurrentPasswordChecksAreThrottled(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.LoginMaxFailures = 3 })
	_, token := e.newUser("u@example.com")
	for range 3 {
		e.do("POST", "/api/v1/me/password", token, map[string]any{"old_password": "guess-password",
			"new_password": "new-password-1"}).wantError(t, 400, "invalid_argument", "old_password")
	}
	r := e.do("POST", "/api/v1/me/password", token, map[string]any{"old_password": "user-password-1",
		"new_password": "new-password-1"})
	r.wantError(t, 429, "rate_limited", "")
	e.do("PATCH", "/api/v1/me", token, map[string]any{"email": "x@example.com", "password": "user-password-1"}).
		wantError(t, 429, "rate_limited", "")
}

// Sign-up, when open, is public and costs a hash too: limited per client address.
func TestSignUpsAreThrottledPerAddress(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.Registration = func() bool { return true }; o.LoginMaxPerAddress = 2 })
	register := func(ip, email string) *resp {
		req := httptest.NewRequest("POST", "/api/v1/auth/register",
			strings.NewReader(fmt.Sprintf(`{"email":%q,"password":"long-enough-1"}`, email)))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = ip + ":40000"
		return e.doRequest(req)
	}
	register("127.0.4.1", "a@example.com").ok(t, 201, nil)
	register("127.0.4.1", "b@example.com").ok(t, 201, nil)
	r := register("127.0.4.1", "c@example.com")
	r.wantError(t, 429, "rate_limited", "")
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	register("127.0.4.2", "c@example.com").ok(t, 201, nil)
}

// parallelLogins runs n logins at once and returns their answers.
func parallelLogins(n int, login func(i int) *resp) []*resp {
	answers := make([]*resp, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			answers[i] = login(i)
		})
	}
	close(start)
	wg.Wait()
	return answers
}

// Issue 9 fix 5, across nodes: two API handlers (two nodes) on one store and one shared
// coordinator. Parallel wrong passwords spread over both verify exactly the limit; the rest
// get 429 with Retry-After. On Redis (a cluster) and in-process (a single node's coordinator
// shared by two handlers), the same contract.
func TestLoginThrottleAcrossNodes(t *testing.T) {
	const limit, parallel = 10, 40
	run := func(t *testing.T, coordA, coordB coord.Coordinator) {
		h := &hashes{}
		opts := func(o *api.Options) {
			o.Coord = coordA
			o.Passwords = h.gate(parallel, time.Minute)
			o.LoginMaxFailures = limit
			o.LoginWindow = time.Hour
		}
		a := newEnv(t, opts)
		a.newUser("victim@example.com")
		ob := api.Options{Store: a.st, Keys: a.keys, Tokens: a.tokens}
		opts(&ob)
		ob.Coord = coordB
		b := &env{t: t, st: a.st, h: httpx.WithRequestIDs(api.New(ob))}
		before := h.total.Load()
		answers := parallelLogins(parallel, func(i int) *resp {
			node := a
			if i%2 == 1 {
				node = b
			}
			// From many addresses: only the email's counter can stop them.
			return node.loginFrom(fmt.Sprintf("127.0.9.%d", i+1), "victim@example.com", "wrong-password")
		})
		if by := tally(t, answers); by[401] != limit || by[429] != parallel-limit {
			t.Errorf("answers by status = %v, want %d × 401 and %d × 429", by, limit, parallel-limit)
		}
		if n := h.total.Load() - before; n != limit {
			t.Errorf("%d passwords were verified across both nodes, want exactly %d", n, limit)
		}
		b.loginFrom("127.0.9.200", "victim@example.com", "user-password-1").wantError(t, 429, "rate_limited", "")
	}
	acrossNodes(t, run)
}

// Issue 9 fix 6: a user's PATCH of their own key re-enabled an admin-disabled key, removed
// an admin-set expiry and set concurrency 0 (unlimited). The owner now changes only the name,
// self-disables, and tightens limits.
func TestOwnerCannotUndoAdminKeyLimits(t *testing.T) {
	e := newEnv(t)
	gid := e.newGroup("default", nil)
	uid, token := e.newUser("u@example.com")
	exp := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	var k keyBody
	e.do("POST", fmt.Sprintf("/api/v1/admin/users/%d/keys", uid), e.adminToken, map[string]any{"group_id": gid,
		"concurrency": 2, "expires_at": exp.Format(time.RFC3339)}).ok(t, 201, &k)
	path := fmt.Sprintf("/api/v1/keys/%d", k.ID)
	later := exp.Add(24 * time.Hour).Format(time.RFC3339)
	earlier := exp.Add(-time.Hour)

	before := e.snapshot()
	for _, c := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"concurrency": 0}, "concurrency"},
		{map[string]any{"concurrency": 3}, "concurrency"},
		{map[string]any{"expires_at": nil}, "expires_at"},
		{map[string]any{"expires_at": later}, "expires_at"},
	} {
		e.do("PATCH", path, token, c.body).wantError(t, 403, "forbidden", c.field)
	}
	if e.snapshot() != before {
		t.Fatal("a refused key update changed the store")
	}
	// Tighter is fine.
	var got keyBody
	e.do("PATCH", path, token, map[string]any{"concurrency": 1, "expires_at": earlier.Format(time.RFC3339), "name": "mine"}).
		ok(t, 200, &got)
	if got.Concurrency != 1 || got.ExpiresAt == nil || !got.ExpiresAt.Equal(earlier) || got.Name != "mine" {
		t.Errorf("tightened key = %+v", got)
	}
	// And back up to the admin's limits, not past them.
	e.do("PATCH", path, token, map[string]any{"concurrency": 2, "expires_at": exp.Format(time.RFC3339)}).ok(t, 200, nil)

	// An admin-disabled key stays disabled whatever its owner sends.
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/keys/%d", k.ID), e.adminToken, map[string]any{"status": "disabled"}).ok(t, 200, nil)
	e.do("PATCH", path, token, map[string]any{"status": "active"}).wantError(t, 403, "forbidden", "status")
	e.do("PATCH", path, token, map[string]any{"name": "renamed"}).ok(t, 200, &got)
	if got.Status != "disabled" {
		t.Errorf("status = %s after the owner's rename, want disabled", got.Status)
	}
	stored, err := e.st.GetAPIKey(context.Background(), k.ID)
	if err != nil || stored.Status != store.StatusDisabled || !stored.AdminDisabled {
		t.Fatalf("stored key = %+v, %v; want disabled by the admin", stored, err)
	}
	// The admin lifts the limits: then the owner is free again.
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/keys/%d", k.ID), e.adminToken, map[string]any{"status": "active",
		"concurrency": 0, "expires_at": nil}).ok(t, 200, nil)
	e.do("PATCH", path, token, map[string]any{"status": "disabled", "concurrency": 0, "expires_at": nil}).ok(t, 200, nil)
	e.do("PATCH", path, token, map[string]any{"status": "active"}).ok(t, 200, &got)
	if got.Status != "active" || got.Concurrency != 0 || got.ExpiresAt != nil {
		t.Errorf("key after the admin lifted the limits = %+v", got)
	}

	// A cap an admin sets on the owner's own key binds the owner too.
	var own keyBody
	e.do("POST", "/api/v1/keys", token, map[string]any{"group_id": gid}).ok(t, 201, &own)
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/keys/%d", own.ID), e.adminToken, map[string]any{"concurrency": 4}).ok(t, 200, nil)
	e.do("PATCH", fmt.Sprintf("/api/v1/keys/%d", own.ID), token, map[string]any{"concurrency": 0}).
		wantError(t, 403, "forbidden", "concurrency")
}

// Issue 9 item 8: changing where an account's credentials are sent (base_url or proxy) must
// come with the credentials, or whoever can edit accounts could send the stored key to a host
// of their choosing.
func TestAccountDestinationChangeNeedsCredentials(t *testing.T) {
	e := newEnv(t)
	var p struct{ ID int64 }
	e.do("POST", "/api/v1/admin/proxies", e.adminToken, map[string]any{"name": "px", "protocol": "http",
		"host": "127.0.0.1", "port": 3128}).ok(t, 201, &p)
	var acc struct{ ID int64 }
	e.do("POST", "/api/v1/admin/accounts", e.adminToken, map[string]any{"name": "a", "platform": "anthropic",
		"type": "apikey", "credentials": map[string]any{"api_key": "sk-ant-stored"}, "base_url": "http://127.0.0.1:9/"}).
		ok(t, 201, &acc)
	path := fmt.Sprintf("/api/v1/admin/accounts/%d", acc.ID)
	before := e.snapshot()
	e.do("PATCH", path, e.adminToken, map[string]any{"base_url": "http://127.0.0.2:9/"}).
		wantError(t, 400, "invalid_argument", "credentials")
	e.do("PATCH", path, e.adminToken, map[string]any{"base_url": ""}).
		wantError(t, 400, "invalid_argument", "credentials")
	e.do("PATCH", path, e.adminToken, map[string]any{"proxy_id": p.ID}).
		wantError(t, 400, "invalid_argument", "credentials")
	if e.snapshot() != before {
		t.Fatal("a refused destination change changed the store")
	}
	// The same value, or other fields, need nothing.
	e.do("PATCH", path, e.adminToken, map[string]any{"base_url": "http://127.0.0.1:9/", "priority": 2}).ok(t, 200, nil)
	e.do("PATCH", path, e.adminToken, map[string]any{"base_url": "http://127.0.0.2:9/", "proxy_id": p.ID,
		"credentials": map[string]any{"api_key": "sk-ant-new"}}).ok(t, 200, nil)
	got, err := e.st.GetAccount(context.Background(), acc.ID)
	if err != nil || got.BaseURL != "http://127.0.0.2:9/" || got.Credentials.APIKey != "sk-ant-new" {
		t.Fatalf("account = %+v, %v", got, err)
	}
}

// Issue 9 item 8: there is a logout, and it ends the session on every node.
func TestLogout(t *testing.T) {
	e := newEnv(t)
	id, token := e.newUser("u@example.com")
	e.do("POST", "/api/v1/auth/logout", "", nil).wantError(t, 401, "unauthenticated", "")
	e.do("POST", "/api/v1/auth/logout", token, nil).ok(t, 204, nil)
	e.wantMessage(fmt.Sprintf("user:%d", id))
	e.do("GET", "/api/v1/me", token, nil).wantError(t, 401, "unauthenticated", "")
	other := &env{t: t, h: api.New(api.Options{Store: e.st, Keys: e.keys, Tokens: e.tokens, Coord: e.co})}
	other.do("GET", "/api/v1/me", token, nil).ok(t, 401, nil)
	e.do("GET", "/api/v1/me", e.login("u@example.com", "user-password-1"), nil).ok(t, 200, nil)
}

// Issue 9 item 8: a password change can revoke the user's API keys as well.
func TestPasswordChangeCanRevokeAPIKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	gid := e.newGroup("default", nil)
	uid, token := e.newUser("u@example.com")
	var k1, k2 keyBody
	e.do("POST", "/api/v1/keys", token, map[string]any{"group_id": gid}).ok(t, 201, &k1)
	e.do("POST", "/api/v1/keys", token, map[string]any{"group_id": gid}).ok(t, 201, &k2)

	// Without the option the keys stay.
	var tb tokenBody
	e.do("POST", "/api/v1/me/password", token, map[string]any{"old_password": "user-password-1",
		"new_password": "new-password-1"}).ok(t, 200, &tb)
	if keys, _, _ := e.st.ListAPIKeys(ctx, uid, store.Page{}); len(keys) != 2 {
		t.Fatalf("%d keys after a plain password change, want 2", len(keys))
	}
	e.do("POST", "/api/v1/me/password", tb.Token, map[string]any{"old_password": "new-password-1",
		"new_password": "newer-password-1", "revoke_api_keys": true}).ok(t, 200, &tb)
	e.wantMessage(fmt.Sprintf("key:%d", k1.ID))
	e.wantMessage(fmt.Sprintf("key:%d", k2.ID))
	if keys, _, _ := e.st.ListAPIKeys(ctx, uid, store.Page{}); len(keys) != 0 {
		t.Fatalf("%d keys left after revoking them with the password change", len(keys))
	}
	if _, err := e.st.KeyAuthByHash(ctx, e.keys.HashAPIKey(k1.Key)); err == nil {
		t.Fatal("a revoked key still authenticates")
	}
	e.do("GET", "/api/v1/me", tb.Token, nil).ok(t, 200, nil)

	// An admin's reset offers the same.
	var k3 keyBody
	e.do("POST", "/api/v1/keys", tb.Token, map[string]any{"group_id": gid}).ok(t, 201, &k3)
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", uid), e.adminToken, map[string]any{"revoke_api_keys": true}).
		wantError(t, 400, "invalid_argument", "revoke_api_keys")
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", uid), e.adminToken, map[string]any{"password": "reset-password-1",
		"revoke_api_keys": true}).ok(t, 200, nil)
	if _, err := e.st.GetAPIKey(ctx, k3.ID); err == nil {
		t.Fatal("the admin's reset with revoke_api_keys left a key")
	}
}
