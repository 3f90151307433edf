package api_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type adminKeyBody struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedBy  int64      `json:"created_by"`
	Status     string     `json:"status"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	Key        string     `json:"key"`
}

// withKey sends one request authenticated by an admin API key in the x-api-key header.
func (e *env) withKey(method, path, key string, body any) *resp {
	e.t.Helper()
	var rd *strings.Reader
	if body != nil {
		rd = strings.NewReader(body.(string))
	} else {
		rd = strings.NewReader("")
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("x-api-key", key)
	return e.doRequest(req)
}

// TestAdminAPIKeys: an admin creates named admin API keys (shown once, stored hashed), uses
// one with both header forms, its changes are audited with the admin as actor and the key's
// id; a revoked key, a key of a demoted admin, a gateway key and a made-up key are refused
// with 401 in the API's error shape; a key serves only admin routes and cannot make keys;
// a non-admin cannot make one.
func TestAdminAPIKeys(t *testing.T) { shapes(t, checkAdminAPIKeys) }

func checkAdminAPIKeys(t *testing.T, e *env) {
	var ci adminKeyBody
	e.do("POST", "/api/v1/admin/admin-keys", e.adminToken, map[string]any{"name": "ci"}).ok(t, 201, &ci)
	if !strings.HasPrefix(ci.Key, "fkadmin-") || ci.Prefix != ci.Key[:13] || ci.Status != "active" ||
		ci.CreatedBy != e.admin.ID || ci.Name != "ci" || ci.LastUsedAt != nil {
		t.Fatalf("created admin key = %+v", ci)
	}
	e.do("POST", "/api/v1/admin/admin-keys", e.adminToken, map[string]any{"name": ""}).wantError(t, 400, "invalid_argument", "name")
	var backup adminKeyBody
	e.do("POST", "/api/v1/admin/admin-keys", e.adminToken, map[string]any{"name": "backup"}).ok(t, 201, &backup)

	// Both header forms act as the admin.
	e.withKey("GET", "/api/v1/admin/users", ci.Key, nil).ok(t, 200, nil)
	var g struct{ ID int64 }
	e.do("POST", "/api/v1/admin/groups", ci.Key, map[string]any{"name": "made-by-ci", "platform": "anthropic"}).ok(t, 201, &g)

	// The change is audited with the creating admin as actor and the key noted.
	var audit struct {
		Items []struct {
			ActorUserID int64  `json:"actor_user_id"`
			ActorEmail  string `json:"actor_email"`
			AdminKeyID  int64  `json:"admin_key_id"`
			TargetID    string `json:"target_id"`
			After       struct {
				Key string `json:"key"`
			} `json:"after"`
		} `json:"items"`
	}
	e.do("GET", "/api/v1/admin/audit?action=group.create", e.adminToken, nil).ok(t, 200, &audit)
	if len(audit.Items) != 1 || audit.Items[0].ActorUserID != e.admin.ID || audit.Items[0].ActorEmail != adminEmail ||
		audit.Items[0].AdminKeyID != ci.ID || audit.Items[0].TargetID != fmt.Sprint(g.ID) {
		t.Fatalf("audit of the change made with the key = %+v", audit.Items)
	}
	e.do("GET", "/api/v1/admin/audit?action=admin-key.create", e.adminToken, nil).ok(t, 200, &audit)
	if len(audit.Items) != 2 || audit.Items[0].AdminKeyID != 0 || audit.Items[0].After.Key != "[redacted]" {
		t.Fatalf("audit of the key's creation = %+v", audit.Items)
	}

	// Listed with its last use, never with the key.
	var list struct {
		Items []adminKeyBody `json:"items"`
		Total int            `json:"total"`
	}
	r := e.withKey("GET", "/api/v1/admin/admin-keys", backup.Key, nil)
	r.ok(t, 200, &list)
	if list.Total != 2 || list.Items[0].ID != ci.ID || list.Items[0].LastUsedAt == nil || list.Items[0].Key != "" ||
		strings.Contains(string(r.body), ci.Key) {
		t.Fatalf("admin key list = %s", r.body)
	}

	// A key serves admin routes only, and cannot make another key.
	e.withKey("GET", "/api/v1/me", ci.Key, nil).wantError(t, 403, "forbidden", "")
	e.withKey("POST", "/api/v1/admin/admin-keys", ci.Key, `{"name":"child"}`).wantError(t, 403, "forbidden", "")

	// A non-admin cannot make one.
	_, userToken := e.newUser("plain@example.com")
	e.do("POST", "/api/v1/admin/admin-keys", userToken, map[string]any{"name": "mine"}).wantError(t, 403, "forbidden", "")

	// A gateway key never signs in to the admin API, in either header; nor does a made-up key.
	var gk keyBody
	e.do("POST", "/api/v1/keys", userToken, map[string]any{"group_id": g.ID}).ok(t, 201, &gk)
	e.do("GET", "/api/v1/admin/users", gk.Key, nil).wantError(t, 401, "unauthenticated", "")
	e.withKey("GET", "/api/v1/admin/users", gk.Key, nil).wantError(t, 401, "unauthenticated", "")
	e.withKey("GET", "/api/v1/me", gk.Key, nil).wantError(t, 401, "unauthenticated", "")
	e.withKey("GET", "/api/v1/admin/users", ci.Key+"x", nil).wantError(t, 401, "unauthenticated", "")

	// Revoked: refused at once in both forms; the other key still works.
	e.withKey("DELETE", fmt.Sprintf("/api/v1/admin/admin-keys/%d", ci.ID), backup.Key, nil).ok(t, 204, nil)
	e.withKey("GET", "/api/v1/admin/users", ci.Key, nil).wantError(t, 401, "unauthenticated", "")
	e.do("GET", "/api/v1/admin/users", ci.Key, nil).wantError(t, 401, "unauthenticated", "")
	e.withKey("GET", "/api/v1/admin/users", backup.Key, nil).ok(t, 200, nil)
	e.do("GET", "/api/v1/admin/admin-keys", e.adminToken, nil).ok(t, 200, &list)
	if list.Items[0].Status != "revoked" || list.Items[0].RevokedAt == nil {
		t.Fatalf("revoked key listed as %+v", list.Items[0])
	}
	e.do("GET", "/api/v1/admin/audit?action=admin-key.delete", e.adminToken, nil).ok(t, 200, &audit)
	if len(audit.Items) != 1 || audit.Items[0].AdminKeyID != backup.ID || audit.Items[0].TargetID != fmt.Sprint(ci.ID) {
		t.Fatalf("audit of the revocation = %+v", audit.Items)
	}

	// A key carries admin rights only while its creator is an active admin.
	var other userBody
	e.do("POST", "/api/v1/admin/users", e.adminToken, map[string]any{"email": "ops@example.com", "password": "ops-password-1",
		"role": "admin"}).ok(t, 201, &other)
	var opsKey adminKeyBody
	e.do("POST", "/api/v1/admin/admin-keys", e.login("ops@example.com", "ops-password-1"), map[string]any{"name": "ops"}).ok(t, 201, &opsKey)
	e.withKey("GET", "/api/v1/admin/users", opsKey.Key, nil).ok(t, 200, nil)
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", other.ID), e.adminToken, map[string]any{"role": "user"}).ok(t, 200, nil)
	e.withKey("GET", "/api/v1/admin/users", opsKey.Key, nil).wantError(t, 401, "unauthenticated", "")

	// Under require_2fa_for_admins a key whose creator has no second factor is refused like
	// the creator's sessions. (The API refuses to turn the setting on for an admin without
	// TOTP; the store stands for an admin whose enrolment was reset since.)
	if err := e.st.SetSetting(t.Context(), "require_2fa_for_admins", "true"); err != nil {
		t.Fatal(err)
	}
	e.withKey("GET", "/api/v1/admin/users", backup.Key, nil).wantError(t, 403, "forbidden", "")
}
