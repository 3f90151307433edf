package api_test

import (
	"fmt"
	"go/ast"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// route is one route of the table, with ids of records that exist.
type route struct{ method, path string }

// Who may call a route, as the route table wraps its handler.
const (
	accessPublic = "public"
	accessUser   = "user"  // user(...): a signed-in user
	accessAdmin  = "admin" // admin(...): an admin
)

// accessOf reads who may call a route from its handler expression in the route table: the
// outermost admin(...) or user(...) wrapper decides; none means public.
func accessOf(e ast.Expr) string {
	access := accessPublic
	ast.Inspect(e, func(n ast.Node) bool {
		c, ok := n.(*ast.CallExpr)
		if !ok || access != accessPublic {
			return access == accessPublic
		}
		if id, ok := c.Fun.(*ast.Ident); ok && (id.Name == accessAdmin || id.Name == accessUser) {
			access = id.Name
		}
		return true
	})
	return access
}

// optionalBodies are the handlers whose body may be left out (decodeOptionalJSON): an empty
// body is a request of its own there, not malformed JSON.
func optionalBodies(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for name, fd := range packageFuncs(t) {
		ast.Inspect(fd, func(n ast.Node) bool {
			if c, ok := n.(*ast.CallExpr); ok {
				if id, ok := c.Fun.(*ast.Ident); ok && id.Name == "decodeOptionalJSON" {
					out[name] = true
				}
			}
			return true
		})
	}
	return out
}

// routes lists the routes of the route table (api.go) that need a user or an admin, with
// existing ids in their wildcards, so a refusal is about the request, never a missing
// record; writes are the routes (public ones included) whose handler decodes a JSON body,
// optional those that may leave it out. A new route is covered as it is added.
func routes(t *testing.T, ids map[string]int64) (user, admin, writes []route, optional map[route]bool) {
	t.Helper()
	decodes, optionals := decodedTypes(t), optionalBodies(t)
	optional = map[route]bool{}
	for _, rt := range routeTable(t) {
		method, path, _ := strings.Cut(rt.pattern, " ")
		r := route{method, fillPath(t, path, ids)}
		switch rt.access {
		case accessAdmin:
			admin = append(admin, r)
		case accessUser:
			user = append(user, r)
		}
		if decodes[rt.handler] != "" {
			writes = append(writes, r)
			optional[r] = optionals[rt.handler]
		}
	}
	return user, admin, writes, optional
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
	e.do("POST", "/api/v1/admin/admin-keys", e.adminToken, map[string]any{"name": "k"}).ok(t, 201, &rec)
	ids["adminkey"] = rec.ID
	e.do("POST", fmt.Sprintf("/api/v1/admin/users/%d/subscriptions", ids["user"]), e.adminToken,
		map[string]any{"group_id": ids["subgroup"], "days": 3}).ok(t, 201, nil)
	e.do("POST", fmt.Sprintf("/api/v1/admin/users/%d/balance", ids["user"]), e.adminToken, map[string]any{"amount": "5"}).ok(t, 200, nil)
	return ids, userToken
}

// Must-show 4: bad input is answered with the documented error and changes nothing.
func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t, everyRoute(t))
	ids, userToken := populate(t, e)
	user, admin, writes, optional := routes(t, ids)
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

	token := func(r route) string {
		switch {
		case slices.Contains(admin, r):
			return e.adminToken
		case slices.Contains(user, r):
			return userToken
		}
		return ""
	}

	t.Run("MalformedJSON", func(t *testing.T) {
		for _, body := range []string{`{"name": "x"`, `{name: "x"}`, `{} {}`, ``, `nul`} {
			for _, r := range writes {
				if body == "" && optional[r] {
					continue
				}
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
