package api_test

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/api"
)

// route is one route of the table, with ids of records that exist.
type route struct{ method, path string }

// routes lists every route; {user}, {key}, {group}... are filled with existing ids, so a
// refusal is about the request, never a missing record.
func routes(ids map[string]int64) (public, user, admin []route) {
	p := func(s string) string {
		for name, id := range ids {
			s = strings.ReplaceAll(s, "{"+name+"}", fmt.Sprint(id))
		}
		return s
	}
	public = []route{{"POST", "/api/v1/auth/register"}, {"POST", "/api/v1/auth/login"}}
	for _, r := range []route{
		{"GET", "/api/v1/me"}, {"PATCH", "/api/v1/me"}, {"POST", "/api/v1/me/password"}, {"GET", "/api/v1/me/subscriptions"},
		{"GET", "/api/v1/groups"}, {"GET", "/api/v1/keys"}, {"POST", "/api/v1/keys"}, {"GET", "/api/v1/keys/{key}"},
		{"PATCH", "/api/v1/keys/{key}"}, {"DELETE", "/api/v1/keys/{key}"}, {"GET", "/api/v1/usage"}, {"GET", "/api/v1/usage/summary"},
		{"POST", "/api/v1/me/redeem"},
	} {
		user = append(user, route{r.method, p(r.path)})
	}
	for _, r := range []route{
		{"GET", "/api/v1/admin/users"}, {"POST", "/api/v1/admin/users"}, {"GET", "/api/v1/admin/users/{user}"},
		{"PATCH", "/api/v1/admin/users/{user}"}, {"DELETE", "/api/v1/admin/users/{user}"},
		{"POST", "/api/v1/admin/users/{user}/balance"}, {"GET", "/api/v1/admin/users/{user}/transactions"},
		{"GET", "/api/v1/admin/users/{user}/keys"}, {"POST", "/api/v1/admin/users/{user}/keys"},
		{"GET", "/api/v1/admin/users/{user}/subscriptions"},
		{"POST", "/api/v1/admin/users/{user}/subscriptions"}, {"PATCH", "/api/v1/admin/users/{user}/subscriptions/{subgroup}"},
		{"DELETE", "/api/v1/admin/users/{user}/subscriptions/{subgroup}"}, {"GET", "/api/v1/admin/subscriptions"},
		{"GET", "/api/v1/admin/keys"}, {"GET", "/api/v1/admin/keys/{key}"}, {"PATCH", "/api/v1/admin/keys/{key}"},
		{"DELETE", "/api/v1/admin/keys/{key}"},
		{"GET", "/api/v1/admin/groups"}, {"POST", "/api/v1/admin/groups"}, {"GET", "/api/v1/admin/groups/{group}"},
		{"PATCH", "/api/v1/admin/groups/{group}"}, {"DELETE", "/api/v1/admin/groups/{group}"},
		{"GET", "/api/v1/admin/accounts"}, {"POST", "/api/v1/admin/accounts"}, {"GET", "/api/v1/admin/accounts/{account}"},
		{"PATCH", "/api/v1/admin/accounts/{account}"}, {"DELETE", "/api/v1/admin/accounts/{account}"},
		{"POST", "/api/v1/admin/accounts/{account}/recover"},
		{"GET", "/api/v1/admin/proxies"}, {"POST", "/api/v1/admin/proxies"}, {"GET", "/api/v1/admin/proxies/{proxy}"},
		{"PATCH", "/api/v1/admin/proxies/{proxy}"}, {"DELETE", "/api/v1/admin/proxies/{proxy}"},
		{"GET", "/api/v1/admin/error-rules"}, {"POST", "/api/v1/admin/error-rules"}, {"DELETE", "/api/v1/admin/error-rules/{rule}"},
		{"GET", "/api/v1/admin/settings"}, {"PUT", "/api/v1/admin/settings"},
		{"GET", "/api/v1/admin/admin-keys"}, {"POST", "/api/v1/admin/admin-keys"},
		{"GET", "/api/v1/admin/usage"}, {"GET", "/api/v1/admin/usage/summary"},
		{"GET", "/api/v1/admin/redeem-codes"}, {"POST", "/api/v1/admin/redeem-codes"},
		{"GET", "/api/v1/admin/redeem-codes/export"}, {"GET", "/api/v1/admin/redeem-codes/{redeem}"},
		{"POST", "/api/v1/admin/redeem-codes/{redeem}/disable"},
	} {
		admin = append(admin, route{r.method, p(r.path)})
	}
	return public, user, admin
}

// populate creates one record of every kind and returns their ids.
func populate(t *testing.T, e *env) (ids map[string]int64, userToken string) {
	t.Helper()
	ids = map[string]int64{"group": e.newGroup("g", nil), "subgroup": e.newGroup("s", map[string]any{"billing_type": "subscription"})}
	ids["user"], userToken = e.newUser("u@example.com")
	var rec struct{ ID int64 }
	e.do("POST", "/api/v1/keys", userToken, map[string]any{"group_id": ids["group"]}).ok(t, 201, &rec)
	ids["key"] = rec.ID
	e.do("POST", "/api/v1/admin/proxies", e.adminToken, map[string]any{"name": "p", "protocol": "http", "host": "127.0.0.1",
		"port": 3128, "password": proxyPassword}).ok(t, 201, &rec)
	ids["proxy"] = rec.ID
	e.do("POST", "/api/v1/admin/accounts", e.adminToken, map[string]any{"name": "a", "platform": "anthropic", "type": "apikey",
		"credentials": map[string]any{"api_key": upstreamKey}, "group_ids": []int64{ids["group"]}, "proxy_id": ids["proxy"]}).ok(t, 201, &rec)
	ids["account"] = rec.ID
	e.do("POST", "/api/v1/admin/error-rules", e.adminToken, map[string]any{"status_code": 400, "minutes": 5}).ok(t, 201, &rec)
	ids["rule"] = rec.ID
	ids["redeem"] = e.issueCodes(map[string]any{"kind": "balance", "amount": "1", "count": 1})[0].ID
	e.do("POST", fmt.Sprintf("/api/v1/admin/users/%d/subscriptions", ids["user"]), e.adminToken,
		map[string]any{"group_id": ids["subgroup"], "days": 3}).ok(t, 201, nil)
	e.do("POST", fmt.Sprintf("/api/v1/admin/users/%d/balance", ids["user"]), e.adminToken, map[string]any{"amount": "5"}).ok(t, 200, nil)
	return ids, userToken
}

// Must-show 4: bad input is answered with the documented error and changes nothing.
func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.Registration = func() bool { return true } })
	ids, userToken := populate(t, e)
	public, user, admin := routes(ids)
	before := e.snapshot()

	t.Run("MissingAuth", func(t *testing.T) {
		for _, r := range append(append([]route{}, user...), admin...) {
			e.do(r.method, r.path, "", bodyFor(r)).wantError(t, 401, "unauthenticated", "")
		}
	})
	t.Run("NonAdminOnAdminRoutes", func(t *testing.T) {
		for _, r := range admin {
			e.do(r.method, r.path, userToken, bodyFor(r)).wantError(t, 403, "forbidden", "")
		}
	})

	writes := []route{public[0], public[1]}
	for _, r := range append(append([]route{}, user...), admin...) {
		if r.method == "POST" || r.method == "PATCH" || r.method == "PUT" {
			if !strings.HasSuffix(r.path, "/recover") && !strings.HasSuffix(r.path, "/disable") {
				writes = append(writes, r)
			}
		}
	}
	token := func(r route) string {
		if strings.HasPrefix(r.path, "/api/v1/admin/") {
			return e.adminToken
		}
		if strings.HasPrefix(r.path, "/api/v1/auth/") {
			return ""
		}
		return userToken
	}

	t.Run("MalformedJSON", func(t *testing.T) {
		for _, body := range []string{`{"name": "x"`, `{name: "x"}`, `{} {}`, ``, `nul`} {
			for _, r := range writes {
				res := e.do(r.method, r.path, token(r), body)
				res.wantError(t, 400, "malformed_json", "")
			}
		}
	})
	t.Run("NotAnObject", func(t *testing.T) {
		for _, r := range writes {
			e.do(r.method, r.path, token(r), `["x"]`).wantError(t, 400, "invalid_argument", "")
		}
	})
	t.Run("UnknownField", func(t *testing.T) {
		for _, r := range writes {
			e.do(r.method, r.path, token(r), `{"no_such_field": 1}`).wantError(t, 400, "unknown_field", "no_such_field")
		}
	})
	t.Run("OversizedBody", func(t *testing.T) {
		big := `{"name": "` + strings.Repeat("x", 1<<20) + `"}`
		for _, r := range writes {
			e.do(r.method, r.path, token(r), big).wantError(t, 413, "too_large", "")
			// Without a Content-Length (chunked), the limit holds while reading.
			req := httptest.NewRequest(r.method, r.path, io.MultiReader(strings.NewReader(big)))
			req.ContentLength = -1
			req.Header.Set("Content-Type", "application/json")
			if tok := token(r); tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			e.doRequest(req).wantError(t, 413, "too_large", "")
		}
	})
	t.Run("WrongContentType", func(t *testing.T) {
		for _, r := range writes {
			req := httptest.NewRequest(r.method, r.path, strings.NewReader(`{}`))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tok := token(r); tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			e.doRequest(req).wantError(t, 415, "unsupported_media_type", "")
		}
	})
	t.Run("WrongTypes", func(t *testing.T) {
		for _, c := range []struct {
			method, path, body, field string
		}{
			{"POST", "/api/v1/auth/login", `{"email": 5, "password": "x"}`, "email"},
			{"POST", "/api/v1/auth/register", `{"email": "a@example.com", "password": true}`, "password"},
			{"PATCH", "/api/v1/me", `{"email": ["a"]}`, "email"},
			{"POST", "/api/v1/keys", `{"group_id": "1"}`, "group_id"},
			{"POST", "/api/v1/keys", `{"group_id": 1.5}`, "group_id"},
			{"POST", "/api/v1/keys", `{"group_id": 99999999999999999999}`, "group_id"},
			{"POST", "/api/v1/keys", `{"group_id": 1, "expires_at": 1700000000}`, "expires_at"},
			{"PATCH", fmt.Sprintf("/api/v1/keys/%d", ids["key"]), `{"concurrency": "2"}`, "concurrency"},
			{"PATCH", fmt.Sprintf("/api/v1/keys/%d", ids["key"]), `{"status": false}`, "status"},
			{"POST", "/api/v1/admin/users", `{"email": "z@example.com", "password": "long-enough-1", "concurrency": "5"}`, "concurrency"},
			{"POST", fmt.Sprintf("/api/v1/admin/users/%d/balance", ids["user"]), `{"amount": 5}`, "amount"},
			{"POST", fmt.Sprintf("/api/v1/admin/users/%d/keys", ids["user"]), `{"group_id": "1"}`, "group_id"},
			{"POST", fmt.Sprintf("/api/v1/admin/users/%d/keys", ids["user"]), `{"group_id": 1, "concurrency": "2"}`, "concurrency"},
			{"POST", "/api/v1/admin/groups", `{"name": "n", "platform": "anthropic", "rate_multiplier": 1.5}`, "rate_multiplier"},
			{"PATCH", fmt.Sprintf("/api/v1/admin/groups/%d", ids["group"]), `{"daily_limit": "ten"}`, "daily_limit"},
			{"PATCH", fmt.Sprintf("/api/v1/admin/accounts/%d", ids["account"]), `{"group_ids": "1"}`, "group_ids"},
			{"PATCH", fmt.Sprintf("/api/v1/admin/accounts/%d", ids["account"]), `{"schedulable": "no"}`, "schedulable"},
			{"PATCH", fmt.Sprintf("/api/v1/admin/accounts/%d", ids["account"]), `{"credentials": "sk-x"}`, "credentials"},
			{"PATCH", fmt.Sprintf("/api/v1/admin/proxies/%d", ids["proxy"]), `{"port": "80"}`, "port"},
			{"POST", "/api/v1/admin/error-rules", `{"status_code": "429", "minutes": 5}`, "status_code"},
			{"PUT", "/api/v1/admin/settings", `{"default_concurrency": "3"}`, "default_concurrency"},
		} {
			tok := userToken
			if strings.HasPrefix(c.path, "/api/v1/admin/") {
				tok = e.adminToken
			}
			e.do(c.method, c.path, tok, c.body).wantError(t, 400, "invalid_argument", c.field)
		}
	})
	t.Run("BadPathIDs", func(t *testing.T) {
		e.do("GET", "/api/v1/admin/users/abc", e.adminToken, nil).wantError(t, 400, "invalid_argument", "id")
		e.do("POST", "/api/v1/admin/users/0/keys", e.adminToken, `{}`).wantError(t, 400, "invalid_argument", "id")
		e.do("POST", "/api/v1/admin/users/999999/keys", e.adminToken, map[string]any{"group_id": ids["group"]}).
			wantError(t, 404, "not_found", "")
		e.do("PATCH", "/api/v1/keys/-4", userToken, `{}`).wantError(t, 400, "invalid_argument", "id")
		e.do("DELETE", "/api/v1/admin/accounts/999999", e.adminToken, nil).wantError(t, 404, "not_found", "")
	})
	t.Run("UnknownRouteAndMethod", func(t *testing.T) {
		e.do("GET", "/api/v1/nothing-here", e.adminToken, nil).wantError(t, 404, "not_found", "")
		r := e.do("PUT", "/api/v1/keys", userToken, `{}`)
		r.wantError(t, 405, "method_not_allowed", "")
		if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
			t.Errorf("Allow = %q, want GET and POST", allow)
		}
	})

	if after := e.snapshot(); after != before {
		t.Errorf("refused requests changed the store:\nbefore %s\nafter  %s", before, after)
	}
	for _, s := range []string{upstreamKey, proxyPassword} {
		if strings.Contains(e.allBodies(), s) {
			t.Errorf("secret %q appears in an answer", s)
		}
	}
}

// bodyFor gives write routes a plausible body, so an auth refusal is not about the body.
func bodyFor(r route) any {
	switch r.method {
	case "POST", "PATCH", "PUT":
		return map[string]any{}
	}
	return nil
}

func TestRequestIDFollowsTheRequest(t *testing.T) {
	e := newEnv(t)
	req := httptest.NewRequest("GET", "/api/v1/me", nil)
	req.Header.Set("X-Request-Id", "trace-abc-123")
	b := e.doRequest(req).wantError(t, 401, "unauthenticated", "")
	if b.RequestID != "trace-abc-123" {
		t.Errorf("request_id = %q, want the incoming id", b.RequestID)
	}
}
