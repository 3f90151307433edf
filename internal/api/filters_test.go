package api_test

import (
	"fmt"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// TestMain stops the PostgreSQL server the two-shape tests start.
func TestMain(m *testing.M) { testenv.Main(m) }

// shapes runs f on an API over SQLite and over PostgreSQL.
func shapes(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("SQLite", func(t *testing.T) { f(t, newEnvOn(t, filepath.Join(t.TempDir(), "api.db"))) })
	t.Run("Postgres", func(t *testing.T) { f(t, newEnvOn(t, testenv.PostgresDSN(t))) })
}

type idPage struct {
	Items []struct {
		ID    int64  `json:"id"`
		Email string `json:"email"`
		Name  string `json:"name"`
	} `json:"items"`
	Total int `json:"total"`
}

// listIDs asks a list route with the query q and returns the ids of the page and the total.
func (e *env) listIDs(token, path string, q url.Values) ([]int64, int) {
	e.t.Helper()
	var p idPage
	e.do("GET", path+"?"+q.Encode(), token, nil).ok(e.t, 200, &p)
	ids := []int64{}
	for _, it := range p.Items {
		ids = append(ids, it.ID)
	}
	return ids, p.Total
}

// TestListFiltersOnTheServer: users, groups, accounts and keys filter and page on the
// server, on both storage shapes; a bad filter value is a field error.
func TestListFiltersOnTheServer(t *testing.T) {
	shapes(t, func(t *testing.T, e *env) {
		q := func(kv ...string) url.Values {
			v := url.Values{}
			for i := 0; i < len(kv); i += 2 {
				v.Set(kv[i], kv[i+1])
			}
			return v
		}
		want := func(what string, got []int64, total int, ids ...int64) {
			t.Helper()
			if !slices.Equal(got, ids) || total != len(ids) {
				t.Fatalf("%s: ids %v (total %d), want %v", what, got, total, ids)
			}
		}

		alice, aliceToken := e.newUser("Alice@example.com")
		bob, _ := e.newUser("bob@example.com")
		e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", bob), e.adminToken, map[string]any{"status": "disabled"}).ok(t, 200, nil)
		ids, total := e.listIDs(e.adminToken, "/api/v1/admin/users", q("search", "ALICE"))
		want("users by search", ids, total, alice)
		ids, total = e.listIDs(e.adminToken, "/api/v1/admin/users", q("status", "disabled"))
		want("users by status", ids, total, bob)
		ids, total = e.listIDs(e.adminToken, "/api/v1/admin/users", q("role", "admin"))
		want("users by role", ids, total, e.admin.ID)
		// Paging counts the filtered rows only.
		ids, total = e.listIDs(e.adminToken, "/api/v1/admin/users", q("search", "example.com", "page_size", "1", "page", "2"))
		if len(ids) != 1 || ids[0] != alice || total != 3 {
			t.Fatalf("page 2 of 1 of the users matching example.com: %v (total %d)", ids, total)
		}

		claude := e.newGroup("claude-team", nil)
		codex := e.newGroup("codex-team", map[string]any{"platform": "openai"})
		ids, total = e.listIDs(e.adminToken, "/api/v1/admin/groups", q("platform", "openai"))
		want("groups by platform", ids, total, codex)
		ids, total = e.listIDs(e.adminToken, "/api/v1/admin/groups", q("search", "team", "status", "active"))
		want("groups by name and status", ids, total, claude, codex)

		newAccount := func(name, platform string, group int64) int64 {
			var a struct{ ID int64 }
			e.do("POST", "/api/v1/admin/accounts", e.adminToken, map[string]any{"name": name, "platform": platform,
				"type": "apikey", "credentials": map[string]any{"api_key": "sk-" + name}, "group_ids": []int64{group}}).ok(t, 201, &a)
			return a.ID
		}
		a1 := newAccount("anthropic-1", "anthropic", claude)
		a2 := newAccount("openai-1", "openai", codex)
		ids, total = e.listIDs(e.adminToken, "/api/v1/admin/accounts", q("group_id", fmt.Sprint(codex)))
		want("accounts by group", ids, total, a2)
		ids, total = e.listIDs(e.adminToken, "/api/v1/admin/accounts", q("platform", "anthropic", "search", "1"))
		want("accounts by platform and name", ids, total, a1)

		newKey := func(token, name string, group int64) int64 {
			var k struct{ ID int64 }
			e.do("POST", "/api/v1/keys", token, map[string]any{"name": name, "group_id": group}).ok(t, 201, &k)
			return k.ID
		}
		k1 := newKey(aliceToken, "laptop", claude)
		k2 := newKey(aliceToken, "ci", claude)
		k3 := newKey(e.adminToken, "ops", claude)
		e.do("PATCH", fmt.Sprintf("/api/v1/keys/%d", k2), aliceToken, map[string]any{"status": "disabled"}).ok(t, 200, nil)
		ids, total = e.listIDs(aliceToken, "/api/v1/keys", q("status", "active"))
		want("a user's own keys by status", ids, total, k1)
		ids, total = e.listIDs(e.adminToken, "/api/v1/admin/keys", q("search", "OPS"))
		want("every key by name", ids, total, k3)
		ids, total = e.listIDs(e.adminToken, "/api/v1/admin/keys", q("user_id", fmt.Sprint(alice), "group_id", fmt.Sprint(claude)))
		want("one user's keys by group", ids, total, k1, k2)

		for _, bad := range []struct{ path, param, value string }{
			{"/api/v1/admin/users", "status", "gone"},
			{"/api/v1/admin/users", "role", "root"},
			{"/api/v1/admin/groups", "platform", "azure"},
			{"/api/v1/admin/accounts", "group_id", "x"},
			{"/api/v1/keys", "search", string(make([]byte, 201))},
		} {
			e.do("GET", bad.path+"?"+q(bad.param, bad.value).Encode(), aliceOrAdmin(bad.path, aliceToken, e.adminToken), nil).
				wantError(t, 400, "invalid_argument", bad.param)
		}
	})
}

// aliceOrAdmin picks the token a route wants: the admin's for admin routes.
func aliceOrAdmin(path, user, admin string) string {
	if strings.HasPrefix(path, "/api/v1/admin/") {
		return admin
	}
	return user
}

// TestRequestOutcomesByDay: the admin reads the gateway's requests per day with the failed
// ones counted apart (ok and a client that left are not failures), over a date range, on
// both storage shapes.
func TestRequestOutcomesByDay(t *testing.T) {
	shapes(t, func(t *testing.T, e *env) {
		if err := e.st.AddRequestOutcomes(t.Context(), []store.DailyOutcome{
			{Day: "2026-03-01", Outcome: "ok", Requests: 90},
			{Day: "2026-03-01", Outcome: "upstream_error", Requests: 6},
			{Day: "2026-03-01", Outcome: "rejected_balance", Requests: 3},
			{Day: "2026-03-01", Outcome: "client_gone", Requests: 1},
			{Day: "2026-03-03", Outcome: "ok", Requests: 5},
			{Day: "2026-03-20", Outcome: "ok", Requests: 1},
		}); err != nil {
			t.Fatal(err)
		}
		type day struct {
			Day      string           `json:"day"`
			Requests int64            `json:"requests"`
			Errors   int64            `json:"errors"`
			Outcomes map[string]int64 `json:"outcomes"`
		}
		var got struct {
			Daily []day `json:"daily"`
		}
		e.do("GET", "/api/v1/admin/usage/outcomes?from=2026-03-01&to=2026-03-05", e.adminToken, nil).ok(t, 200, &got)
		want := []day{
			{Day: "2026-03-01", Requests: 100, Errors: 9, Outcomes: map[string]int64{"ok": 90, "upstream_error": 6, "rejected_balance": 3, "client_gone": 1}},
			{Day: "2026-03-03", Requests: 5, Errors: 0, Outcomes: map[string]int64{"ok": 5}},
		}
		if !reflect.DeepEqual(got.Daily, want) {
			t.Fatalf("outcomes:\n got  %+v\n want %+v", got.Daily, want)
		}
		e.do("GET", "/api/v1/admin/usage/outcomes?from=2026-03-05&to=2026-03-01", e.adminToken, nil).wantError(t, 400, "invalid_argument", "from")
		e.do("GET", "/api/v1/admin/usage/outcomes?to=March", e.adminToken, nil).wantError(t, 400, "invalid_argument", "to")
		_, userToken := e.newUser("u@example.com")
		e.do("GET", "/api/v1/admin/usage/outcomes", userToken, nil).wantError(t, 403, "forbidden", "")
	})
}
