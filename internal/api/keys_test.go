package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/secret"
)

type groupBody struct {
	ID             int64  `json:"id"`
	Name           string `json:"name"`
	Platform       string `json:"platform"`
	BillingType    string `json:"billing_type"`
	RateMultiplier string `json:"rate_multiplier"`
	DailyLimit     string `json:"daily_limit"`
	Status         string `json:"status"`
}

func TestGroups(t *testing.T) {
	e := newEnv(t)
	var g groupBody
	e.do("POST", "/api/v1/admin/groups", e.adminToken, map[string]any{"name": "pro", "platform": "anthropic",
		"rate_multiplier": "1.5", "billing_type": "subscription", "daily_limit": "20"}).ok(t, 201, &g)
	want := groupBody{ID: g.ID, Name: "pro", Platform: "anthropic", BillingType: "subscription", RateMultiplier: "1.500000",
		DailyLimit: "20.000000000", Status: "active"}
	if g != want {
		t.Errorf("created = %+v, want %+v", g, want)
	}
	e.do("POST", "/api/v1/admin/groups", e.adminToken, map[string]any{"name": "pro", "platform": "openai"}).
		wantError(t, 409, "conflict", "name")

	var u groupBody
	e.do("PATCH", fmt.Sprintf("/api/v1/admin/groups/%d", g.ID), e.adminToken, map[string]any{"rate_multiplier": "0.8", "status": "disabled"}).
		ok(t, 200, &u)
	if u.RateMultiplier != "0.800000" || u.Status != "disabled" || u.Name != "pro" {
		t.Errorf("updated = %+v", u)
	}
	e.wantMessage(fmt.Sprintf("group:%d", g.ID))
	var list page[groupBody]
	e.do("GET", "/api/v1/admin/groups", e.adminToken, nil).ok(t, 200, &list)
	if list.Total != 1 || list.Items[0] != u {
		t.Errorf("list = %+v", list)
	}
	e.do("DELETE", fmt.Sprintf("/api/v1/admin/groups/%d", g.ID), e.adminToken, nil).ok(t, 204, nil)
	e.wantMessage(fmt.Sprintf("group:%d", g.ID))
	e.do("GET", fmt.Sprintf("/api/v1/admin/groups/%d", g.ID), e.adminToken, nil).wantError(t, 404, "not_found", "")

	t.Run("DeleteWithKeysIsAConflict", func(t *testing.T) {
		gid := e.newGroup("busy", nil)
		_, token := e.newUser("k@example.com")
		e.do("POST", "/api/v1/keys", token, map[string]any{"group_id": gid}).ok(t, 201, nil)
		e.do("DELETE", fmt.Sprintf("/api/v1/admin/groups/%d", gid), e.adminToken, nil).wantError(t, 409, "conflict", "")
	})
}

type keyBody struct {
	ID          int64      `json:"id"`
	UserID      int64      `json:"user_id"`
	GroupID     int64      `json:"group_id"`
	Name        string     `json:"name"`
	Prefix      string     `json:"prefix"`
	Status      string     `json:"status"`
	Concurrency int        `json:"concurrency"`
	ExpiresAt   *time.Time `json:"expires_at"`
	Key         string     `json:"key"`
}

func TestKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	gid := e.newGroup("default", nil)
	other := e.newGroup("other", map[string]any{"platform": "openai"})
	uid, token := e.newUser("u@example.com")
	_, strangerToken := e.newUser("s@example.com")

	exp := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	var k keyBody
	e.do("POST", "/api/v1/keys", token, map[string]any{"name": "laptop", "group_id": gid, "concurrency": 2,
		"expires_at": exp.Format(time.RFC3339)}).ok(t, 201, &k)
	if !strings.HasPrefix(k.Key, secret.APIKeyPrefix) || !strings.HasPrefix(k.Key, k.Prefix) || len(k.Prefix) >= len(k.Key) {
		t.Errorf("key %q with prefix %q", k.Key, k.Prefix)
	}
	if k.UserID != uid || k.GroupID != gid || k.Name != "laptop" || k.Status != "active" || k.Concurrency != 2 ||
		k.ExpiresAt == nil || !k.ExpiresAt.Equal(exp) {
		t.Errorf("created = %+v", k)
	}
	e.wantMessage(fmt.Sprintf("key:%d", k.ID))
	// The gateway finds the key by its keyed hash: the key works.
	ka, err := e.st.KeyAuthByHash(ctx, e.keys.HashAPIKey(k.Key))
	if err != nil || ka.Key.ID != k.ID {
		t.Fatalf("KeyAuthByHash = %+v, %v", ka, err)
	}

	var got keyBody
	e.do("GET", fmt.Sprintf("/api/v1/keys/%d", k.ID), token, nil).ok(t, 200, &got)
	if got.Key != "" {
		t.Error("the full key was shown again after creation")
	}
	var list page[keyBody]
	e.do("GET", "/api/v1/keys", token, nil).ok(t, 200, &list)
	if list.Total != 1 || list.Items[0].ID != k.ID || list.Items[0].Key != "" {
		t.Errorf("list = %+v", list)
	}
	if strings.Count(e.allBodies(), k.Key) != 1 {
		t.Error("the full key appears in more than the one creation answer")
	}

	var upd keyBody
	e.do("PATCH", fmt.Sprintf("/api/v1/keys/%d", k.ID), token, map[string]any{"status": "disabled", "name": "old laptop",
		"expires_at": nil, "concurrency": 0}).ok(t, 200, &upd)
	if upd.Status != "disabled" || upd.Name != "old laptop" || upd.ExpiresAt != nil || upd.Concurrency != 0 || upd.GroupID != gid {
		t.Errorf("updated = %+v", upd)
	}
	e.wantMessage(fmt.Sprintf("key:%d", k.ID))

	t.Run("OthersKeysAreNotFound", func(t *testing.T) {
		before := e.snapshot()
		path := fmt.Sprintf("/api/v1/keys/%d", k.ID)
		e.do("GET", path, strangerToken, nil).wantError(t, 404, "not_found", "")
		e.do("PATCH", path, strangerToken, map[string]any{"status": "active"}).wantError(t, 404, "not_found", "")
		e.do("DELETE", path, strangerToken, nil).wantError(t, 404, "not_found", "")
		var l page[keyBody]
		e.do("GET", "/api/v1/keys", strangerToken, nil).ok(t, 200, &l)
		if l.Total != 0 {
			t.Errorf("a stranger lists %d keys", l.Total)
		}
		if e.snapshot() != before {
			t.Error("a stranger changed the store")
		}
	})

	t.Run("Refused", func(t *testing.T) {
		before := e.snapshot()
		path := fmt.Sprintf("/api/v1/keys/%d", k.ID)
		e.do("POST", "/api/v1/keys", token, map[string]any{"name": "x"}).wantError(t, 400, "invalid_argument", "group_id")
		e.do("POST", "/api/v1/keys", token, map[string]any{"group_id": 99999}).wantError(t, 400, "invalid_argument", "group_id")
		e.do("POST", "/api/v1/keys", token, map[string]any{"group_id": gid, "concurrency": -1}).wantError(t, 400, "invalid_argument", "concurrency")
		e.do("POST", "/api/v1/keys", token, map[string]any{"group_id": gid, "expires_at": "2001-01-01T00:00:00Z"}).
			wantError(t, 400, "invalid_argument", "expires_at")
		e.do("POST", "/api/v1/keys", token, map[string]any{"group_id": gid, "expires_at": "tomorrow"}).
			wantError(t, 400, "invalid_argument", "expires_at")
		e.do("PATCH", path, token, map[string]any{"status": "deleted"}).wantError(t, 400, "invalid_argument", "status")
		e.do("PATCH", path, token, map[string]any{"name": ""}).wantError(t, 400, "invalid_argument", "name")
		e.do("PATCH", path, token, map[string]any{"hash": "x"}).wantError(t, 400, "unknown_field", "hash")
		e.do("PATCH", path, token, map[string]any{"user_id": 1}).wantError(t, 400, "unknown_field", "user_id")
		if e.snapshot() != before {
			t.Error("refused key writes changed the store")
		}
	})

	t.Run("OnlyUsableGroups", func(t *testing.T) {
		sub := e.newGroup("sub", map[string]any{"billing_type": "subscription"})
		disabled := e.newGroup("off", map[string]any{"status": "disabled"})
		var groups struct {
			Items []groupBody `json:"items"`
		}
		e.do("GET", "/api/v1/groups", token, nil).ok(t, 200, &groups)
		var names []string
		for _, g := range groups.Items {
			names = append(names, g.Name)
		}
		if strings.Join(names, ",") != "default,other" {
			t.Errorf("usable groups = %v, want default,other", names)
		}
		e.do("POST", "/api/v1/keys", token, map[string]any{"group_id": sub}).wantError(t, 400, "invalid_argument", "group_id")
		e.do("POST", "/api/v1/keys", token, map[string]any{"group_id": disabled}).wantError(t, 400, "invalid_argument", "group_id")
		e.do("PATCH", fmt.Sprintf("/api/v1/keys/%d", k.ID), token, map[string]any{"group_id": sub}).
			wantError(t, 400, "invalid_argument", "group_id")
		// A subscription makes the group usable.
		e.do("POST", fmt.Sprintf("/api/v1/admin/users/%d/subscriptions", uid), e.adminToken, map[string]any{"group_id": sub, "days": 30}).
			ok(t, 201, nil)
		e.do("PATCH", fmt.Sprintf("/api/v1/keys/%d", k.ID), token, map[string]any{"group_id": sub}).ok(t, 200, nil)
		e.do("PATCH", fmt.Sprintf("/api/v1/keys/%d", k.ID), token, map[string]any{"group_id": other}).ok(t, 200, nil)
	})

	t.Run("AdminManagesAnyKey", func(t *testing.T) {
		var l page[keyBody]
		e.do("GET", fmt.Sprintf("/api/v1/admin/users/%d/keys", uid), e.adminToken, nil).ok(t, 200, &l)
		if l.Total != 1 {
			t.Errorf("user's keys: %d, want 1", l.Total)
		}
		e.do("GET", "/api/v1/admin/keys", e.adminToken, nil).ok(t, 200, &l)
		e.do("GET", fmt.Sprintf("/api/v1/admin/keys?user_id=%d", uid), e.adminToken, nil).ok(t, 200, &l)
		if l.Total != 1 || l.Items[0].ID != k.ID {
			t.Errorf("admin key list = %+v", l)
		}
		e.do("PATCH", fmt.Sprintf("/api/v1/admin/keys/%d", k.ID), e.adminToken, map[string]any{"status": "active"}).ok(t, 200, &upd)
		if upd.Status != "active" {
			t.Errorf("status = %s", upd.Status)
		}
		e.do("DELETE", fmt.Sprintf("/api/v1/admin/keys/%d", k.ID), e.adminToken, nil).ok(t, 204, nil)
		e.wantMessage(fmt.Sprintf("key:%d", k.ID))
		e.do("GET", fmt.Sprintf("/api/v1/keys/%d", k.ID), token, nil).wantError(t, 404, "not_found", "")
	})

	t.Run("DeleteOwnKey", func(t *testing.T) {
		var k2 keyBody
		e.do("POST", "/api/v1/keys", token, map[string]any{"group_id": gid}).ok(t, 201, &k2)
		if k2.Name != "default" {
			t.Errorf("unnamed key is called %q", k2.Name)
		}
		e.do("DELETE", fmt.Sprintf("/api/v1/keys/%d", k2.ID), token, nil).ok(t, 204, nil)
		e.wantMessage(fmt.Sprintf("key:%d", k2.ID))
		if _, err := e.st.KeyAuthByHash(ctx, e.keys.HashAPIKey(k2.Key)); err == nil {
			t.Error("a deleted key still authenticates")
		}
	})
}

// TestAdminCreatesKeyForUser: an admin makes a key owned by another user, bound to a group
// that user may use; the full key is shown once, and the key works for its owner.
func TestAdminCreatesKeyForUser(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	gid := e.newGroup("default", nil)
	sub := e.newGroup("sub", map[string]any{"billing_type": "subscription"})
	off := e.newGroup("off", map[string]any{"status": "disabled"})
	uid, token := e.newUser("u@example.com")
	path := fmt.Sprintf("/api/v1/admin/users/%d/keys", uid)

	exp := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Second)
	var k keyBody
	e.do("POST", path, e.adminToken, map[string]any{"name": "ci runner", "group_id": gid, "concurrency": 3,
		"expires_at": exp.Format(time.RFC3339)}).ok(t, 201, &k)
	if !strings.HasPrefix(k.Key, secret.APIKeyPrefix) || !strings.HasPrefix(k.Key, k.Prefix) {
		t.Errorf("key %q with prefix %q", k.Key, k.Prefix)
	}
	if k.UserID != uid || k.GroupID != gid || k.Name != "ci runner" || k.Status != "active" || k.Concurrency != 3 ||
		k.ExpiresAt == nil || !k.ExpiresAt.Equal(exp) {
		t.Errorf("created = %+v", k)
	}
	e.wantMessage(fmt.Sprintf("key:%d", k.ID))
	ka, err := e.st.KeyAuthByHash(ctx, e.keys.HashAPIKey(k.Key))
	if err != nil || ka.Key.ID != k.ID || ka.Key.UserID != uid {
		t.Fatalf("KeyAuthByHash = %+v, %v", ka, err)
	}
	// The owner sees it as their own, without the full key; the admin owns no key.
	var mine page[keyBody]
	e.do("GET", "/api/v1/keys", token, nil).ok(t, 200, &mine)
	if mine.Total != 1 || mine.Items[0].ID != k.ID || mine.Items[0].Key != "" {
		t.Errorf("owner's keys = %+v", mine)
	}
	e.do("GET", "/api/v1/keys", e.adminToken, nil).ok(t, 200, &mine)
	if mine.Total != 0 {
		t.Errorf("the admin owns %d keys", mine.Total)
	}
	if strings.Count(e.allBodies(), k.Key) != 1 {
		t.Error("the full key appears in more than the one creation answer")
	}
	var unnamed keyBody
	e.do("POST", path, e.adminToken, map[string]any{"group_id": gid}).ok(t, 201, &unnamed)
	if unnamed.Name != "default" || unnamed.UserID != uid || unnamed.ExpiresAt != nil {
		t.Errorf("unnamed = %+v", unnamed)
	}

	t.Run("Refused", func(t *testing.T) {
		before := e.snapshot()
		for _, c := range []struct {
			body        any
			code, field string
		}{
			{map[string]any{"name": "x"}, "invalid_argument", "group_id"},
			{map[string]any{"group_id": 99999}, "invalid_argument", "group_id"},
			{map[string]any{"group_id": sub}, "invalid_argument", "group_id"}, // no subscription
			{map[string]any{"group_id": off}, "invalid_argument", "group_id"}, // disabled
			{map[string]any{"group_id": gid, "concurrency": -1}, "invalid_argument", "concurrency"},
			{map[string]any{"group_id": gid, "expires_at": "2001-01-01T00:00:00Z"}, "invalid_argument", "expires_at"},
			{map[string]any{"group_id": gid, "name": strings.Repeat("n", 500)}, "invalid_argument", "name"},
			{map[string]any{"group_id": gid, "user_id": e.admin.ID}, "unknown_field", "user_id"},
			{map[string]any{"group_id": gid, "hash": "x"}, "unknown_field", "hash"},
		} {
			b := e.do("POST", path, e.adminToken, c.body).wantError(t, 400, c.code, c.field)
			if c.field == "group_id" && strings.Contains(b.Error.Message, "you") {
				t.Errorf("the admin is told the group is unavailable to them: %q", b.Error.Message)
			}
		}
		e.do("POST", fmt.Sprintf("/api/v1/admin/users/%d/keys", uid+1000), e.adminToken, map[string]any{"group_id": gid}).
			wantError(t, 404, "not_found", "")
		// Only admins: a user cannot make keys for others (nor for themselves on this route).
		e.do("POST", path, token, map[string]any{"group_id": gid}).wantError(t, 403, "forbidden", "")
		e.do("POST", path, "", map[string]any{"group_id": gid}).wantError(t, 401, "unauthenticated", "")
		if e.snapshot() != before {
			t.Error("refused key creations changed the store")
		}
	})

	t.Run("SubscriptionMakesTheGroupUsable", func(t *testing.T) {
		e.do("POST", fmt.Sprintf("/api/v1/admin/users/%d/subscriptions", uid), e.adminToken, map[string]any{"group_id": sub, "days": 30}).
			ok(t, 201, nil)
		var sk keyBody
		e.do("POST", path, e.adminToken, map[string]any{"group_id": sub}).ok(t, 201, &sk)
		if sk.UserID != uid || sk.GroupID != sub {
			t.Errorf("created = %+v", sk)
		}
		// The admin holds no subscription: the group's usability is the owner's, not the caller's.
		e.do("POST", fmt.Sprintf("/api/v1/admin/users/%d/keys", e.admin.ID), e.adminToken, map[string]any{"group_id": sub}).
			wantError(t, 400, "invalid_argument", "group_id")
	})
}

type subscriptionBody struct {
	ID        int64     `json:"id"`
	UserID    int64     `json:"user_id"`
	GroupID   int64     `json:"group_id"`
	Status    string    `json:"status"`
	StartsAt  time.Time `json:"starts_at"`
	ExpiresAt time.Time `json:"expires_at"`
	DailyUsed string    `json:"daily_used"`
}

func TestSubscriptions(t *testing.T) {
	e := newEnv(t)
	sub := e.newGroup("sub", map[string]any{"billing_type": "subscription"})
	bal := e.newGroup("bal", nil)
	uid, token := e.newUser("u@example.com")
	base := fmt.Sprintf("/api/v1/admin/users/%d/subscriptions", uid)

	before := e.snapshot()
	e.do("POST", base, e.adminToken, map[string]any{"group_id": bal, "days": 30}).wantError(t, 400, "invalid_argument", "group_id")
	e.do("POST", base, e.adminToken, map[string]any{"group_id": sub}).wantError(t, 400, "invalid_argument", "days")
	e.do("POST", base, e.adminToken, map[string]any{"group_id": sub, "days": 30, "expires_at": "2100-01-01T00:00:00Z"}).
		wantError(t, 400, "invalid_argument", "days")
	e.do("POST", base, e.adminToken, map[string]any{"group_id": sub, "expires_at": "2001-01-01T00:00:00Z"}).
		wantError(t, 400, "invalid_argument", "expires_at")
	if e.snapshot() != before {
		t.Fatal("refused assignments changed the store")
	}

	var s subscriptionBody
	e.do("POST", base, e.adminToken, map[string]any{"group_id": sub, "days": 30}).ok(t, 201, &s)
	if s.UserID != uid || s.GroupID != sub || s.Status != "active" || s.DailyUsed != "0.000000000" ||
		s.ExpiresAt.Sub(s.StartsAt) != 30*24*time.Hour {
		t.Errorf("assigned = %+v", s)
	}
	e.wantMessage(fmt.Sprintf("user:%d", uid))
	e.do("POST", base, e.adminToken, map[string]any{"group_id": sub, "days": 5}).wantError(t, 409, "conflict", "")

	var extended subscriptionBody
	e.do("PATCH", fmt.Sprintf("%s/%d", base, sub), e.adminToken, map[string]any{"extend_days": 10}).ok(t, 200, &extended)
	if extended.ExpiresAt.Sub(s.ExpiresAt) != 10*24*time.Hour {
		t.Errorf("extended from %v to %v, want 10 days more", s.ExpiresAt, extended.ExpiresAt)
	}
	e.do("PATCH", fmt.Sprintf("%s/%d", base, sub), e.adminToken, map[string]any{"status": "disabled"}).ok(t, 200, &extended)
	if extended.Status != "disabled" {
		t.Errorf("status = %s", extended.Status)
	}

	var mine page[subscriptionBody]
	e.do("GET", "/api/v1/me/subscriptions", token, nil).ok(t, 200, &mine)
	if mine.Total != 1 || mine.Items[0].ID != s.ID {
		t.Errorf("own subscriptions = %+v", mine)
	}
	var all page[subscriptionBody]
	e.do("GET", "/api/v1/admin/subscriptions", e.adminToken, nil).ok(t, 200, &all)
	e.do("GET", base, e.adminToken, nil).ok(t, 200, &mine)
	if all.Total != 1 || mine.Total != 1 {
		t.Errorf("admin lists: all %d, user's %d; want 1 and 1", all.Total, mine.Total)
	}

	e.do("DELETE", fmt.Sprintf("%s/%d", base, sub), e.adminToken, nil).ok(t, 204, nil)
	e.wantMessage(fmt.Sprintf("user:%d", uid))
	e.do("DELETE", fmt.Sprintf("%s/%d", base, sub), e.adminToken, nil).wantError(t, 404, "not_found", "")
}
