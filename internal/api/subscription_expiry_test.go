package api_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// A subscription the expiry job marked is shown expired, and an admin's extension makes it
// active again, unless the same call disables it.
func TestExtendingAnExpiredSubscriptionMakesItActive(t *testing.T) {
	e := newEnv(t)
	sub := e.newGroup("sub", map[string]any{"billing_type": "subscription"})
	uid, _ := e.newUser("u@example.com")
	base := fmt.Sprintf("/api/v1/admin/users/%d/subscriptions", uid)
	e.do("POST", base, e.adminToken, map[string]any{"group_id": sub, "days": 1}).ok(t, 201, nil)

	expire := func() {
		t.Helper()
		s, err := e.st.GetSubscription(t.Context(), uid, sub)
		if err != nil {
			t.Fatal(err)
		}
		s.ExpiresAt = time.Now().Add(-time.Minute)
		if err := e.st.UpdateSubscription(t.Context(), s); err != nil {
			t.Fatal(err)
		}
		if got, err := e.st.ExpireSubscriptions(t.Context(), time.Now()); err != nil || len(got) != 1 {
			t.Fatalf("ExpireSubscriptions: %d, %v", len(got), err)
		}
	}
	expire()
	var list page[subscriptionBody]
	e.do("GET", base, e.adminToken, nil).ok(t, 200, &list)
	if list.Total != 1 || list.Items[0].Status != store.StatusExpired {
		t.Fatalf("listed %+v, want it expired", list)
	}
	var s subscriptionBody
	e.do("PATCH", fmt.Sprintf("%s/%d", base, sub), e.adminToken, map[string]any{"extend_days": 3}).ok(t, 200, &s)
	if s.Status != store.StatusActive || !s.ExpiresAt.After(time.Now().Add(71*time.Hour)) {
		t.Fatalf("after extending an expired subscription: %+v", s)
	}

	expire()
	e.do("PATCH", fmt.Sprintf("%s/%d", base, sub), e.adminToken, map[string]any{"extend_days": 3, "status": "disabled"}).ok(t, 200, &s)
	if s.Status != store.StatusDisabled {
		t.Fatalf("extended and disabled: status %s", s.Status)
	}
}
