package api_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/api"
	"github.com/fluxcode/fluxcode/internal/auth"
	"github.com/fluxcode/fluxcode/internal/store"
)

func TestRegister(t *testing.T) {
	t.Run("OpenByConfiguration", func(t *testing.T) {
		e := newEnv(t, func(o *api.Options) { o.Registration = func() bool { return true } })
		var tb tokenBody
		e.do("POST", "/api/v1/auth/register", "", map[string]string{"email": " New@Example.com ", "password": "long-enough-1"}).
			ok(t, 201, &tb)
		if tb.User.Email != "new@example.com" || tb.User.Role != store.RoleUser || tb.User.Balance != "0.000000000" {
			t.Errorf("registered user = %+v", tb.User)
		}
		var me userBody
		e.do("GET", "/api/v1/me", tb.Token, nil).ok(t, 200, &me)
		if me.ID != tb.User.ID {
			t.Errorf("/me = %+v, want user %d", me, tb.User.ID)
		}
		e.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "new@example.com", "password": "long-enough-2"}).
			wantError(t, 409, "conflict", "email")
	})

	t.Run("ClosedByDefault", func(t *testing.T) {
		e := newEnv(t)
		before := e.snapshot()
		e.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "x@example.com", "password": "long-enough-1"}).
			wantError(t, 403, "forbidden", "")
		if after := e.snapshot(); after != before {
			t.Error("a refused registration changed the store")
		}
	})

	t.Run("SettingOverridesConfiguration", func(t *testing.T) {
		e := newEnv(t, func(o *api.Options) { o.Registration = func() bool { return true } })
		e.do("PUT", "/api/v1/admin/settings", e.adminToken, map[string]any{"registration_enabled": false}).ok(t, 200, nil)
		e.wantMessage("settings:0")
		e.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "x@example.com", "password": "long-enough-1"}).
			wantError(t, 403, "forbidden", "")
		e.do("PUT", "/api/v1/admin/settings", e.adminToken, map[string]any{"registration_enabled": true,
			"default_balance": "1.25", "default_concurrency": 3}).ok(t, 200, nil)
		var tb tokenBody
		e.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "x@example.com", "password": "long-enough-1"}).
			ok(t, 201, &tb)
		if tb.User.Balance != "1.250000000" || tb.User.Concurrency != 3 {
			t.Errorf("new user = %+v, want the default balance 1.25 and concurrency 3", tb.User)
		}
		// The sign-up credit is a recorded transaction like any other.
		txs, _, err := e.st.ListBalanceTransactions(context.Background(), tb.User.ID, store.Page{})
		if err != nil || len(txs) != 1 || txs[0].Amount != 1_250_000_000 {
			t.Errorf("transactions = %+v, %v; want one of 1.25", txs, err)
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		e := newEnv(t, func(o *api.Options) { o.Registration = func() bool { return true } })
		before := e.snapshot()
		e.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "not-an-email", "password": "long-enough-1"}).
			wantError(t, 400, "invalid_argument", "email")
		e.do("POST", "/api/v1/auth/register", "", map[string]string{"email": "a@example.com", "password": "short"}).
			wantError(t, 400, "invalid_argument", "password")
		e.do("POST", "/api/v1/auth/register", "", map[string]any{"email": "a@example.com", "password": "long-enough-1", "role": "admin"}).
			wantError(t, 400, "unknown_field", "role")
		if after := e.snapshot(); after != before {
			t.Error("refused registrations changed the store")
		}
	})
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	e.newUser("u@example.com")

	t.Run("WrongPassword", func(t *testing.T) {
		e.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "u@example.com", "password": "wrong-password"}).
			wantError(t, 401, "unauthenticated", "")
	})
	t.Run("UnknownEmail", func(t *testing.T) {
		e.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "nobody@example.com", "password": "whatever-1"}).
			wantError(t, 401, "unauthenticated", "")
	})
	t.Run("EmailIsCaseInsensitive", func(t *testing.T) {
		e.login("U@Example.COM", "user-password-1")
	})
	t.Run("DisabledUser", func(t *testing.T) {
		id, token := e.newUser("d@example.com")
		e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", id), e.adminToken, map[string]any{"status": "disabled"}).ok(t, 200, nil)
		e.wantMessage(fmt.Sprintf("user:%d", id))
		// The same answer as a wrong password: the status of an account is not disclosed.
		right := e.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "d@example.com", "password": "user-password-1"})
		wrong := e.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "d@example.com", "password": "wrong-password"})
		right.wantError(t, 401, "unauthenticated", "")
		if rb, wb := right.wantError(t, 401, "unauthenticated", ""), wrong.wantError(t, 401, "unauthenticated", ""); rb.Error != wb.Error {
			t.Errorf("disabled user with the right password: %+v; wrong password: %+v", rb.Error, wb.Error)
		}
		// A token issued before the user was disabled is refused too, and stays refused once
		// the user is enabled again.
		e.do("GET", "/api/v1/me", token, nil).wantError(t, 401, "unauthenticated", "")
		e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", id), e.adminToken, map[string]any{"status": "active"}).ok(t, 200, nil)
		e.do("GET", "/api/v1/me", token, nil).wantError(t, 401, "unauthenticated", "")
		e.login("d@example.com", "user-password-1")
	})
}

func TestLoginThrottle(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.LoginMaxFailures = 3; o.LoginWindow = time.Hour })
	e.newUser("u@example.com")
	bad := map[string]string{"email": "u@example.com", "password": "wrong-password"}
	for range 3 {
		e.do("POST", "/api/v1/auth/login", "", bad).wantError(t, 401, "unauthenticated", "")
	}
	r := e.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "u@example.com", "password": "user-password-1"})
	r.wantError(t, 429, "rate_limited", "")
	if r.header.Get("Retry-After") != "3600" {
		t.Errorf("Retry-After = %q, want 3600", r.header.Get("Retry-After"))
	}
	// Another email from the same address is not locked.
	e.login(adminEmail, adminPassword)
}

// The throttle lives in the shared counters: a second API instance (another node) on the
// same store and coordinator sees the failures counted by the first.
func TestLoginThrottleIsShared(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.LoginMaxFailures = 2 })
	e.newUser("u@example.com")
	other := &env{t: t, st: e.st, co: e.co, msgs: e.msgs,
		h: api.New(api.Options{Store: e.st, Keys: e.keys, Tokens: e.tokens, Coord: e.co, LoginMaxFailures: 2})}
	bad := map[string]string{"email": "u@example.com", "password": "wrong-password"}
	e.do("POST", "/api/v1/auth/login", "", bad).wantError(t, 401, "unauthenticated", "")
	other.do("POST", "/api/v1/auth/login", "", bad).ok(t, 401, nil)
	e.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "u@example.com", "password": "user-password-1"}).
		wantError(t, 429, "rate_limited", "")
}

func TestPasswordChangeRevokesOlderTokens(t *testing.T) {
	e := newEnv(t)
	id, oldToken := e.newUser("u@example.com")
	e.do("GET", "/api/v1/me", oldToken, nil).ok(t, 200, nil)

	before := e.snapshot()
	e.do("POST", "/api/v1/me/password", oldToken, map[string]string{"old_password": "wrong-password", "new_password": "new-password-1"}).
		wantError(t, 400, "invalid_argument", "old_password")
	e.do("POST", "/api/v1/me/password", oldToken, map[string]string{"old_password": "user-password-1", "new_password": "short"}).
		wantError(t, 400, "invalid_argument", "new_password")
	if e.snapshot() != before {
		t.Fatal("a refused password change changed the store")
	}

	var tb tokenBody
	e.do("POST", "/api/v1/me/password", oldToken, map[string]string{"old_password": "user-password-1", "new_password": "new-password-1"}).
		ok(t, 200, &tb)
	e.wantMessage(fmt.Sprintf("user:%d", id))
	e.do("GET", "/api/v1/me", oldToken, nil).wantError(t, 401, "unauthenticated", "")
	e.do("GET", "/api/v1/me", tb.Token, nil).ok(t, 200, nil)
	// Another node on the same store refuses the old token as well, at once.
	other := &env{t: t, h: api.New(api.Options{Store: e.st, Keys: e.keys, Tokens: e.tokens, Coord: e.co})}
	other.do("GET", "/api/v1/me", oldToken, nil).ok(t, 401, nil)
	other.do("GET", "/api/v1/me", tb.Token, nil).ok(t, 200, nil)
	e.do("POST", "/api/v1/auth/login", "", map[string]string{"email": "u@example.com", "password": "user-password-1"}).
		wantError(t, 401, "unauthenticated", "")
	fresh := e.login("u@example.com", "new-password-1")
	e.do("GET", "/api/v1/me", fresh, nil).ok(t, 200, nil)

	// An admin's password reset revokes as well.
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", id), e.adminToken, map[string]any{"password": "reset-password-1"}).ok(t, 200, nil)
	e.do("GET", "/api/v1/me", fresh, nil).wantError(t, 401, "unauthenticated", "")
	e.login("u@example.com", "reset-password-1")
}

func TestTokens(t *testing.T) {
	e := newEnv(t)
	id, token := e.newUser("u@example.com")
	cases := map[string]string{
		"Garbage":       "Bearer not-a-token",
		"WrongScheme":   "Basic " + token,
		"Empty":         "",
		"OtherSecret":   "Bearer " + otherSecretToken(t, id),
		"BearerNoSpace": "Bearer",
	}
	for name, header := range cases {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/api/v1/me", nil)
			if header != "" {
				req.Header.Set("Authorization", header)
			}
			r := e.doRequest(req)
			r.wantError(t, 401, "unauthenticated", "")
		})
	}
	t.Run("TokenOfDeletedUser", func(t *testing.T) {
		e.do("DELETE", fmt.Sprintf("/api/v1/admin/users/%d", id), e.adminToken, nil).ok(t, 204, nil)
		e.do("GET", "/api/v1/me", token, nil).wantError(t, 401, "unauthenticated", "")
	})
}

// otherSecretToken is a well-formed token for user id, signed under another secret.
func otherSecretToken(t *testing.T, id int64) string {
	t.Helper()
	s, _, err := auth.NewTokens([]byte("another secret, also 32 bytes!!!"), time.Hour).Issue(&store.User{ID: id, Role: store.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
