package api_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// subscribedUser is an environment with a user (id, token) subscribed for a day to a
// subscription group (sub), and the admin's path of the user's subscriptions.
func subscribedUser(t *testing.T) (e *env, sub, uid int64, userToken, base string) {
	t.Helper()
	e = newEnv(t)
	sub = e.newGroup("sub", map[string]any{"billing_type": "subscription"})
	uid, userToken = e.newUser("u@example.com")
	base = fmt.Sprintf("/api/v1/admin/users/%d/subscriptions", uid)
	e.do("POST", base, e.adminToken, map[string]any{"group_id": sub, "days": 1}).ok(t, 201, nil)
	return e, sub, uid, userToken, base
}

// A subscription the expiry job marked is shown expired, and an admin's extension makes it
// active again, unless the same call disables it.
func TestExtendingAnExpiredSubscriptionMakesItActive(t *testing.T) {
	e, sub, uid, _, base := subscribedUser(t)

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

// A subscription past its end is shown expired at once, to the admin and to its user, even
// before the expiry job marks it: admission already refuses it.
func TestEndedSubscriptionIsShownExpiredBeforeTheJob(t *testing.T) {
	e, sub, uid, userToken, base := subscribedUser(t)
	var list page[subscriptionBody]
	e.do("GET", base, e.adminToken, nil).ok(t, 200, &list)
	if list.Total != 1 || list.Items[0].Status != store.StatusActive {
		t.Fatalf("a running subscription listed %+v, want it active", list)
	}

	s, err := e.st.GetSubscription(t.Context(), uid, sub)
	if err != nil {
		t.Fatal(err)
	}
	s.ExpiresAt = time.Now().Add(-time.Minute) // ended; the job has not run
	if err := e.st.UpdateSubscription(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	e.do("GET", base, e.adminToken, nil).ok(t, 200, &list)
	if list.Total != 1 || list.Items[0].Status != store.StatusExpired {
		t.Fatalf("admin's list %+v, want it expired", list)
	}
	e.do("GET", "/api/v1/me/subscriptions", userToken, nil).ok(t, 200, &list)
	if list.Total != 1 || list.Items[0].Status != store.StatusExpired {
		t.Fatalf("user's list %+v, want it expired", list)
	}
	if got, err := e.st.GetSubscription(t.Context(), uid, sub); err != nil || got.Status != store.StatusActive {
		t.Fatalf("stored status %v (%v): the view must not write", got, err)
	}
}
