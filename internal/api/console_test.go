package api_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/api"
	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/store"
)

// consoleLogin signs in as the console does and returns the session cookie.
func (e *env) consoleLogin(email, password string) *http.Cookie {
	e.t.Helper()
	req := httptest.NewRequest("POST", "/api/v1/auth/login", strings.NewReader(`{"email":"`+email+`","password":"`+password+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.ConsoleHeader, "1")
	r := e.doRequest(req)
	var tb tokenBody
	r.ok(e.t, 200, &tb)
	if tb.Token != "" {
		e.t.Fatalf("the console's login answer carries the token in its body: %s", r.body)
	}
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == api.SessionCookie {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/api/" {
				e.t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/api/", c)
			}
			return c
		}
	}
	e.t.Fatalf("no session cookie in %v", r.header)
	return nil
}

func (e *env) withCookie(method, path string, c *http.Cookie, console bool) *resp {
	req := httptest.NewRequest(method, path, nil)
	req.AddCookie(c)
	if console {
		req.Header.Set(api.ConsoleHeader, "1")
	}
	return e.doRequest(req)
}

// TestConsoleCookieSession: the console's HttpOnly cookie signs requests in only together
// with the console header, so a cross-site request (which carries the cookie but cannot add
// the header) is anonymous; logout clears it; bearer tokens work as before.
func TestConsoleCookieSession(t *testing.T) {
	e := newEnv(t)
	c := e.consoleLogin(adminEmail, adminPassword)

	e.withCookie("GET", "/api/v1/admin/users", c, true).ok(t, 200, nil)
	// The forged cross-site request: cookie, no header.
	e.withCookie("GET", "/api/v1/admin/users", c, false).wantError(t, 401, "unauthenticated", "")
	e.withCookie("DELETE", "/api/v1/admin/users/1", c, false).wantError(t, 401, "unauthenticated", "")
	// A bearer token still works, and wins over a cookie.
	e.do("GET", "/api/v1/me", e.adminToken, nil).ok(t, 200, nil)

	r := e.withCookie("POST", "/api/v1/auth/logout", c, true)
	if r.status != 204 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	cleared := (&http.Response{Header: r.header}).Cookies()
	if len(cleared) != 1 || cleared[0].Name != api.SessionCookie || cleared[0].MaxAge >= 0 {
		t.Fatalf("logout did not clear the cookie: %v", r.header)
	}
}

// TestPasswordChangeRequired: a user marked (the generated first admin) reads
// must_change_password until the password is changed.
func TestPasswordChangeRequired(t *testing.T) {
	e := newEnv(t)
	var me struct {
		MustChange bool `json:"must_change_password"`
	}
	e.do("GET", "/api/v1/me", e.adminToken, nil).ok(t, 200, &me)
	if me.MustChange {
		t.Fatal("must_change_password set without a mark")
	}
	if err := api.RequirePasswordChange(context.Background(), e.st, e.admin.ID); err != nil {
		t.Fatal(err)
	}
	e.do("GET", "/api/v1/me", e.adminToken, nil).ok(t, 200, &me)
	if !me.MustChange {
		t.Fatal("must_change_password not reported for a marked user")
	}
	// A wrong new password changes nothing.
	e.do("POST", "/api/v1/me/password", e.adminToken, map[string]string{"old_password": adminPassword, "new_password": "x"}).
		wantError(t, 400, "invalid_argument", "new_password")
	var tb tokenBody
	e.do("POST", "/api/v1/me/password", e.adminToken, map[string]string{"old_password": adminPassword, "new_password": "a-new-password-1"}).
		ok(t, 200, &tb)
	e.do("GET", "/api/v1/me", tb.Token, nil).ok(t, 200, &me)
	if me.MustChange {
		t.Fatal("must_change_password still set after the change")
	}
}

// TestPublicSettings: a signed-out page learns whether it may offer registration.
func TestPublicSettings(t *testing.T) {
	e := newEnv(t)
	var s struct {
		SiteName     string `json:"site_name"`
		Registration bool   `json:"registration_enabled"`
	}
	e.do("GET", "/api/v1/settings/public", "", nil).ok(t, 200, &s)
	if s.SiteName != "FluxCode" || s.Registration {
		t.Fatalf("defaults: %+v", s)
	}
	e.do("PUT", "/api/v1/admin/settings", e.adminToken, map[string]any{"registration_enabled": true, "site_name": "Acme AI"}).ok(t, 200, nil)
	e.do("GET", "/api/v1/settings/public", "", nil).ok(t, 200, &s)
	if s.SiteName != "Acme AI" || !s.Registration {
		t.Fatalf("after the admin's change: %+v", s)
	}
}

// TestAdminDashboard: every account with its in-flight count from the shared slot sets (as
// the gateway takes them) against its limit, and its health marks.
func TestAdminDashboard(t *testing.T) {
	e := newEnv(t)
	gid := e.newGroup("g", nil)
	var acc struct {
		ID int64 `json:"id"`
	}
	e.do("POST", "/api/v1/admin/accounts", e.adminToken, map[string]any{"name": "a1", "platform": "anthropic", "type": "apikey",
		"credentials": map[string]string{"api_key": "sk-ant-x"}, "concurrency": 3, "group_ids": []int64{gid}}).ok(t, 201, &acc)
	ctx := context.Background()
	key := "slot:account:" + strconv.FormatInt(acc.ID, 10)
	for _, h := range []string{"h1", "h2"} {
		if ok, _, err := e.co.AcquireSlots(ctx, h, time.Minute, coord.SlotReq{Key: key, Limit: 3}); err != nil || !ok {
			t.Fatalf("acquire: %v %v", ok, err)
		}
	}
	until := time.Now().Add(time.Hour).UTC()
	if err := e.st.MarkAccount(ctx, acc.ID, store.AccountMark{RateLimitedUntil: &until}); err != nil {
		t.Fatal(err)
	}
	var d struct {
		Accounts []struct {
			ID               int64      `json:"id"`
			InFlight         int        `json:"in_flight"`
			Concurrency      int        `json:"concurrency"`
			RateLimitedUntil *time.Time `json:"rate_limited_until"`
		} `json:"accounts"`
		Users  int `json:"users"`
		Groups int `json:"groups"`
	}
	e.do("GET", "/api/v1/admin/dashboard", e.adminToken, nil).ok(t, 200, &d)
	if len(d.Accounts) != 1 || d.Accounts[0].InFlight != 2 || d.Accounts[0].Concurrency != 3 {
		t.Fatalf("accounts: %+v", d.Accounts)
	}
	if d.Accounts[0].RateLimitedUntil == nil || d.Accounts[0].RateLimitedUntil.Sub(until).Abs() > time.Second {
		t.Fatalf("rate limit mark: %v, want %v", d.Accounts[0].RateLimitedUntil, until)
	}
	if d.Users != 1 || d.Groups != 1 {
		t.Fatalf("counts: %+v", d)
	}
	_, userToken := e.newUser("u@example.com")
	e.do("GET", "/api/v1/admin/dashboard", userToken, nil).wantError(t, 403, "forbidden", "")
}

// TestUsageExport: the filtered ledger as CSV, every page of it, with client-chosen text
// kept from being read as a spreadsheet formula.
func TestUsageExport(t *testing.T) {
	e := newEnv(t)
	gid := e.newGroup("g", nil)
	uid, _ := e.newUser("u@example.com")
	day := time.Date(2030, 3, 1, 10, 0, 0, 0, time.UTC)
	var rows []store.Usage
	for i := range 450 {
		model := "sonnet"
		if i == 0 {
			model = "=HYPERLINK(\"x\")"
		}
		rows = append(rows, store.Usage{RequestID: "r" + strconv.Itoa(i), UserID: uid, GroupID: gid, AccountID: 7, Platform: "anthropic",
			Model: model, UpstreamModel: "up", InputTokens: 10, Cost: 1_500_000_000, RateMultiplierPPM: 1_000_000, Charged: 1_500_000_000,
			BillingType: store.BillingBalance, StatusCode: 200, CreatedAt: day.Add(time.Duration(i) * time.Second)})
	}
	rows = append(rows, store.Usage{RequestID: "other-day", UserID: uid, GroupID: gid, Platform: "anthropic", Model: "sonnet",
		RateMultiplierPPM: 1_000_000, BillingType: store.BillingBalance, StatusCode: 200, CreatedAt: day.AddDate(0, 0, 2)})
	if _, err := e.st.RecordUsage(context.Background(), rows); err != nil {
		t.Fatal(err)
	}

	r := e.do("GET", "/api/v1/admin/usage/export?from=2030-03-01&to=2030-03-01", e.adminToken, nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") {
		t.Fatalf("export: %d %v %s", r.status, r.header, r.body)
	}
	recs, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 451 || recs[0][0] != "created_at" {
		t.Fatalf("%d records (want header + 450); first %v", len(recs), recs[0])
	}
	var formula bool
	for _, rec := range recs[1:] {
		if rec[13] != "1.500000000" {
			t.Fatalf("cost column %q", rec[13])
		}
		if strings.Contains(rec[7], "HYPERLINK") {
			formula = true
			if !strings.HasPrefix(rec[7], "'=") {
				t.Fatalf("formula not neutralised: %q", rec[7])
			}
		}
	}
	if !formula {
		t.Fatal("the formula row is missing")
	}
	e.do("GET", "/api/v1/admin/usage/export?to=nonsense", e.adminToken, nil).wantError(t, 400, "invalid_argument", "to")
}

// consoleDo sends a JSON request as the console does: cookie (when c is set) and header.
func (e *env) consoleDo(method, path string, c *http.Cookie, body string) *resp {
	e.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.ConsoleHeader, "1")
	if c != nil {
		req.AddCookie(c)
	}
	return e.doRequest(req)
}

// sessionCookieOf returns the session cookie an answer set, nil when none.
func sessionCookieOf(r *resp) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == api.SessionCookie && c.HttpOnly && c.MaxAge > 0 {
			return c
		}
	}
	return nil
}

// TestConsoleTwoFactorEnrolment: an admin who must enrol (require_2fa_for_admins) signs in to
// the console, gets the enrol-only token as the HttpOnly cookie (never in the body), enrols
// with it, and confirming swaps it for a full session cookie. An admin whose session predates
// the requirement reads must_enrol_2fa on /me.
func TestConsoleTwoFactorEnrolment(t *testing.T) {
	e, c := newClockEnv(t)
	e.enrol(e.adminToken, c)
	e.do("PUT", "/api/v1/admin/settings", e.adminToken, map[string]any{"require_2fa_for_admins": true}).ok(t, 200, nil)
	e.do("POST", "/api/v1/admin/users", e.adminToken, map[string]any{"email": "second@example.com", "password": "second-password", "role": "admin"}).ok(t, 201, nil)
	var me struct {
		MustEnrol bool `json:"must_enrol_2fa"`
	}
	e.do("GET", "/api/v1/me", e.adminToken, nil).ok(t, 200, &me)
	if me.MustEnrol {
		t.Fatal("an enrolled admin reads must_enrol_2fa")
	}

	r := e.consoleDo("POST", "/api/v1/auth/login", nil, `{"email":"second@example.com","password":"second-password"}`)
	var lb struct {
		Token    string `json:"token"`
		Required bool   `json:"two_factor_enrolment_required"`
	}
	r.ok(t, 200, &lb)
	enrolCookie := sessionCookieOf(r)
	if lb.Token != "" || !lb.Required || enrolCookie == nil {
		t.Fatalf("console login of an admin who must enrol: body %s, cookie %v", r.body, enrolCookie)
	}
	e.consoleDo("GET", "/api/v1/me", enrolCookie, "").wantError(t, 401, "unauthenticated", "")
	var st struct {
		Enabled  bool `json:"enabled"`
		Required bool `json:"required"`
	}
	e.consoleDo("GET", "/api/v1/me/2fa", enrolCookie, "").ok(t, 200, &st)
	if st.Enabled || !st.Required {
		t.Fatalf("2fa status = %+v", st)
	}
	var en enrolBody
	e.consoleDo("POST", "/api/v1/me/2fa/enrol", enrolCookie, "").ok(t, 200, &en)
	r = e.consoleDo("POST", "/api/v1/me/2fa/confirm", enrolCookie, `{"code":"`+code(t, en.Secret, c.now())+`"}`)
	var cb confirmBody
	r.ok(t, 200, &cb)
	full := sessionCookieOf(r)
	if len(cb.RecoveryCodes) != 10 || cb.Session == nil || cb.Session.Token != "" || full == nil {
		t.Fatalf("confirm from the console: body %s, cookie %v", r.body, full)
	}
	e.consoleDo("GET", "/api/v1/admin/users", full, "").ok(t, 200, nil)
	e.consoleDo("GET", "/api/v1/me", full, "").ok(t, 200, &me)
	if me.MustEnrol {
		t.Fatal("must_enrol_2fa after enrolling")
	}

	// An admin session from before the requirement: /me says what the admin routes want.
	e.do("PUT", "/api/v1/admin/settings", e.adminToken, map[string]any{"require_2fa_for_admins": false}).ok(t, 200, nil)
	e.do("POST", "/api/v1/admin/users", e.adminToken, map[string]any{"email": "third@example.com", "password": "third-password", "role": "admin"}).ok(t, 201, nil)
	third := e.login("third@example.com", "third-password")
	e.do("PUT", "/api/v1/admin/settings", e.adminToken, map[string]any{"require_2fa_for_admins": true}).ok(t, 200, nil)
	e.do("GET", "/api/v1/me", third, nil).ok(t, 200, &me)
	if !me.MustEnrol {
		t.Fatal("an admin without a second factor under require_2fa_for_admins does not read must_enrol_2fa")
	}
	e.do("GET", "/api/v1/admin/users", third, nil).wantError(t, 403, "forbidden", "")
}
