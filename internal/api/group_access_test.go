package api_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

// TestGroupAccess: an exclusive group is listed to, and bindable by, only the users an admin
// allowed on it, on both the user's and the admin's key paths.
func TestGroupAccess(t *testing.T) {
	shapes(t, checkGroupAccess)
}

type accessBody struct {
	ID              int64   `json:"id"`
	AllowedGroupIDs []int64 `json:"allowed_group_ids"`
}

func checkGroupAccess(t *testing.T, e *env) {
	open := e.newGroup("open", nil)
	var g struct {
		ID        int64 `json:"id"`
		Exclusive bool  `json:"exclusive"`
	}
	e.do("POST", "/api/v1/admin/groups", e.adminToken, map[string]any{"name": "vip", "platform": "anthropic", "exclusive": true}).
		ok(t, 201, &g)
	if !g.Exclusive {
		t.Fatalf("created group: exclusive = false, want true")
	}
	vip := g.ID
	insider, insiderToken := e.newUser("in@example.com")
	outsider, outsiderToken := e.newUser("out@example.com")

	var u accessBody
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", insider), e.adminToken, map[string]any{"allowed_group_ids": []int64{vip}}).
		ok(t, 200, &u)
	if !slices.Equal(u.AllowedGroupIDs, []int64{vip}) {
		t.Fatalf("PATCH answered allowed_group_ids %v, want [%d]", u.AllowedGroupIDs, vip)
	}
	e.wantMessage(fmt.Sprintf("user:%d", insider))
	// The audit log shows the list before and after.
	var before, after accessBody
	entry := find(t, e.audit("page_size=100"), "user.update")
	if json.Unmarshal(entry.Before, &before) != nil || json.Unmarshal(entry.After, &after) != nil ||
		before.AllowedGroupIDs == nil || len(before.AllowedGroupIDs) != 0 || !slices.Equal(after.AllowedGroupIDs, []int64{vip}) {
		t.Errorf("user.update audit before %s after %s, want allowed_group_ids [] then [%d]", entry.Before, entry.After, vip)
	}
	e.do("GET", fmt.Sprintf("/api/v1/admin/users/%d", outsider), e.adminToken, nil).ok(t, 200, &u)
	if u.AllowedGroupIDs == nil || len(u.AllowedGroupIDs) != 0 {
		t.Fatalf("outsider allowed_group_ids = %v, want []", u.AllowedGroupIDs)
	}
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", outsider), e.adminToken,
		map[string]any{"allowed_group_ids": []int64{987654}}).wantError(t, 400, "invalid_argument", "allowed_group_ids")

	listed := func(token string) []int64 {
		t.Helper()
		var p page[struct{ ID int64 }]
		e.do("GET", "/api/v1/groups", token, nil).ok(t, 200, &p)
		var ids []int64
		for _, it := range p.Items {
			ids = append(ids, it.ID)
		}
		return ids
	}
	if got := listed(insiderToken); !slices.Equal(got, []int64{open, vip}) {
		t.Errorf("insider lists groups %v, want [%d %d]", got, open, vip)
	}
	if got := listed(outsiderToken); !slices.Equal(got, []int64{open}) {
		t.Errorf("outsider lists groups %v, want [%d]", got, open)
	}

	// Binding: the user's own path and the admin's, on create and on update.
	e.do("POST", "/api/v1/keys", outsiderToken, map[string]any{"group_id": vip}).wantError(t, 400, "invalid_argument", "group_id")
	e.do("POST", fmt.Sprintf("/api/v1/admin/users/%d/keys", outsider), e.adminToken, map[string]any{"group_id": vip}).
		wantError(t, 400, "invalid_argument", "group_id")
	var k keyBody
	e.do("POST", "/api/v1/keys", outsiderToken, map[string]any{"group_id": open}).ok(t, 201, &k)
	e.do("PATCH", fmt.Sprintf("/api/v1/keys/%d", k.ID), outsiderToken, map[string]any{"group_id": vip}).
		wantError(t, 400, "invalid_argument", "group_id")
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/keys/%d", k.ID), e.adminToken, map[string]any{"group_id": vip}).
		wantError(t, 400, "invalid_argument", "group_id")
	e.do("POST", "/api/v1/keys", insiderToken, map[string]any{"group_id": vip}).ok(t, 201, nil)

	// Once allowed, the outsider may move the key; the group's flag can be turned off too.
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/users/%d", outsider), e.adminToken, map[string]any{"allowed_group_ids": []int64{vip}}).
		ok(t, 200, nil)
	e.do("PATCH", fmt.Sprintf("/api/v1/keys/%d", k.ID), outsiderToken, map[string]any{"group_id": vip}).ok(t, 200, &k)
	if k.GroupID != vip {
		t.Errorf("key group = %d, want %d", k.GroupID, vip)
	}
	_, otherToken := e.newUser("other@example.com")
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/groups/%d", vip), e.adminToken, map[string]any{"exclusive": false}).ok(t, 200, &g)
	if g.Exclusive {
		t.Fatal("group still exclusive after PATCH exclusive=false")
	}
	e.do("POST", "/api/v1/keys", otherToken, map[string]any{"group_id": vip}).ok(t, 201, nil)
}
