package api_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

type auditBody struct {
	ID          int64           `json:"id"`
	ActorUserID int64           `json:"actor_user_id"`
	ActorEmail  string          `json:"actor_email"`
	Action      string          `json:"action"`
	TargetType  string          `json:"target_type"`
	TargetID    string          `json:"target_id"`
	Before      json.RawMessage `json:"before"`
	After       json.RawMessage `json:"after"`
	ClientIP    string          `json:"client_ip"`
	CreatedAt   time.Time       `json:"created_at"`
}

type auditPage struct {
	Items []auditBody `json:"items"`
	Total int         `json:"total"`
}

func (e *env) audit(query string) auditPage {
	e.t.Helper()
	var p auditPage
	e.do("GET", "/api/v1/admin/audit?"+query, e.adminToken, nil).ok(e.t, 200, &p)
	return p
}

// Every admin change is recorded with who, what, when and the record before and after, and
// no secret it carried (credentials, passwords, API keys, tokens) reaches the log.
func TestAuditLogRecordsAdminChangesWithoutSecrets(t *testing.T) {
	e := newEnv(t)
	const (
		userPassword  = "user-SECRET-password"
		upstream      = "sk-ant-api03-SECRET-upstream-key"
		refresh       = "rt-SECRET-refresh-token"
		proxyPassword = "proxy-SECRET-password"
		newPassword   = "changed-SECRET-password"
	)
	var u userBody
	e.do("POST", "/api/v1/admin/users", e.adminToken, map[string]any{"email": "u@example.com", "password": userPassword}).ok(t, 201, &u)
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", u.ID), e.adminToken, map[string]any{"concurrency": 7, "password": newPassword}).ok(t, 200, nil)
	gid := e.newGroup("g", nil)
	var key struct {
		ID  int64  `json:"id"`
		Key string `json:"key"`
	}
	e.do("POST", fmt.Sprintf("/api/v1/admin/users/%d/keys", u.ID), e.adminToken, map[string]any{"group_id": gid, "name": "k"}).ok(t, 201, &key)
	if !strings.HasPrefix(key.Key, "fk-") {
		t.Fatalf("created key = %+v", key)
	}
	var p struct{ ID int64 }
	e.do("POST", "/api/v1/admin/proxies", e.adminToken, map[string]any{"name": "egress", "protocol": "http", "host": "127.0.0.1",
		"port": 3128, "username": "bob", "password": proxyPassword}).ok(t, 201, &p)
	var acc struct{ ID int64 }
	e.do("POST", "/api/v1/admin/accounts", e.adminToken, map[string]any{"name": "main", "platform": "anthropic", "type": "oauth",
		"credentials": map[string]any{"access_token": upstream, "refresh_token": refresh}, "group_ids": []int64{gid}}).ok(t, 201, &acc)
	e.do("POST", fmt.Sprintf("/api/v1/admin/users/%d/balance", u.ID), e.adminToken, map[string]any{"amount": "5", "note": "gift"}).ok(t, 200, nil)
	e.do("PUT", "/api/v1/admin/settings", e.adminToken, map[string]any{"site_name": "Acme"}).ok(t, 200, nil)
	// Refused changes are not recorded.
	e.do("POST", "/api/v1/admin/users", e.adminToken, map[string]any{"email": "u@example.com", "password": userPassword}).wantError(t, 409, "conflict", "email")
	_, userToken := e.newUser("plain@example.com")
	e.do("DELETE", fmt.Sprintf("/api/v1/admin/users/%d", u.ID), userToken, nil).wantError(t, 403, "forbidden", "")
	e.do("DELETE", fmt.Sprintf("/api/v1/admin/accounts/%d", acc.ID), e.adminToken, nil).ok(t, 204, nil)

	all := e.audit("page_size=100")
	var actions []string
	for i := len(all.Items) - 1; i >= 0; i-- {
		actions = append(actions, all.Items[i].Action)
	}
	want := []string{"user.create", "user.update", "group.create", "user.key.create", "proxy.create", "account.create",
		"user.balance", "setting.update", "user.create", "account.delete"}
	if strings.Join(actions, " ") != strings.Join(want, " ") || all.Total != len(want) {
		t.Fatalf("actions (oldest first) = %v, want %v", actions, want)
	}
	update := all.Items[len(all.Items)-2]
	if update.Action != "user.update" {
		update = find(t, all, "user.update")
	}
	if update.ActorUserID != e.admin.ID || update.ActorEmail != adminEmail || update.TargetType != "user" ||
		update.TargetID != fmt.Sprint(u.ID) || update.ClientIP == "" || update.CreatedAt.IsZero() {
		t.Errorf("user.update entry = %+v", update)
	}
	var before, after struct{ Concurrency int }
	if json.Unmarshal(update.Before, &before) != nil || json.Unmarshal(update.After, &after) != nil || before.Concurrency != 0 || after.Concurrency != 7 {
		t.Errorf("user.update before %s after %s, want concurrency 0 then 7", update.Before, update.After)
	}
	created := find(t, all, "account.create")
	if created.TargetID != fmt.Sprint(acc.ID) || string(created.Before) != "null" || !strings.Contains(string(created.After), `"name":"main"`) {
		t.Errorf("account.create entry = %+v", created)
	}
	deleted := find(t, all, "account.delete")
	if !strings.Contains(string(deleted.Before), `"name":"main"`) || string(deleted.After) != "null" {
		t.Errorf("account.delete entry before %s after %s", deleted.Before, deleted.After)
	}

	// No secret in the API's answer nor in the stored rows.
	listed, _ := json.Marshal(all)
	stored := rawDump(t, e, "SELECT actor_email || action || target_type || target_id || before_json || after_json || client_ip FROM audit_log")
	for _, s := range []string{userPassword, newPassword, upstream, refresh, proxyPassword, key.Key, e.adminToken, userToken} {
		if strings.Contains(string(listed), s) || strings.Contains(string(stored), s) {
			t.Errorf("the audit log holds the secret %q", s)
		}
	}
	if !strings.Contains(string(find(t, all, "user.key.create").After), `"key":"[redacted]"`) {
		t.Errorf("the created key is not shown as redacted: %s", find(t, all, "user.key.create").After)
	}
}

func find(t *testing.T, p auditPage, action string) auditBody {
	t.Helper()
	for _, e := range p.Items {
		if e.Action == action {
			return e
		}
	}
	t.Fatalf("no %s entry", action)
	return auditBody{}
}

func TestAuditLogFilters(t *testing.T) {
	e := newEnv(t)
	e.newGroup("a", nil)
	second := e.newGroup("b", nil)
	var u userBody
	e.do("POST", "/api/v1/admin/users", e.adminToken, map[string]any{"email": "other-admin@example.com", "password": "other-password", "role": "admin"}).ok(t, 201, &u)
	otherToken := e.login("other-admin@example.com", "other-password")
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/groups/%d", second), otherToken, map[string]any{"description": "d"}).ok(t, 200, nil)

	count := func(q string) int {
		t.Helper()
		p := e.audit(q)
		if len(p.Items) != p.Total && p.Total <= 20 {
			t.Errorf("%s: %d items, total %d", q, len(p.Items), p.Total)
		}
		return p.Total
	}
	for q, want := range map[string]int{
		"":                                     4,
		"actor=other-admin@example.com":        1,
		fmt.Sprintf("actor_id=%d", e.admin.ID): 3,
		"action=group.create":                  2,
		"target_type=group":                    3,
		fmt.Sprintf("target_type=group&target_id=%d", second):                     2,
		"from=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)): 0,
		"to=" + url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)):  0,
		"from=2000-01-01&to=2999-12-31":                                           4,
	} {
		if got := count(q); got != want {
			t.Errorf("?%s: %d entries, want %d", q, got, want)
		}
	}
	var p auditPage
	e.do("GET", "/api/v1/admin/audit?page=2&page_size=3", e.adminToken, nil).ok(t, 200, &p)
	if len(p.Items) != 1 || p.Total != 4 || p.Items[0].Action != "group.create" {
		t.Errorf("page 2 = %+v", p)
	}
	e.do("GET", "/api/v1/admin/audit?actor_id=x", e.adminToken, nil).wantError(t, 400, "invalid_argument", "actor_id")
	e.do("GET", "/api/v1/admin/audit?from=yesterday", e.adminToken, nil).wantError(t, 400, "invalid_argument", "from")
	_, token := e.newUser("u@example.com")
	e.do("GET", "/api/v1/admin/audit", token, nil).wantError(t, 403, "forbidden", "")
}
