package gateway_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
)

// TestRequestOutcomesCounted: every request, served or refused, is counted by day and outcome
// in the store (the admin's error rate over time); the counts reach it at the latest when the
// node closes.
func TestRequestOutcomesCounted(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-outcomes", nil)
	for _, c := range []struct {
		body   string
		h      http.Header
		status int
	}{
		{jsonBody, nil, 200},
		{jsonBody, nil, 200},
		{jsonBody, http.Header{"X-Api-Key": {"fk-not-a-key"}}, 401},
		{`{"model":`, nil, 400},
	} {
		resp := e.post(t, "/v1/messages", c.body, c.h)
		readBody(t, resp)
		if resp.StatusCode != c.status {
			t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
		}
	}
	e.node.Close(t)
	day := e.clock.Now().UTC().Format(time.DateOnly)
	got, err := e.Store.DailyRequestOutcomes(context.Background(), day, day)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"ok": 2, "authentication": 1, "invalid_request": 1}
	seen := map[string]int64{}
	for _, o := range got {
		seen[o.Outcome] = o.Requests
	}
	if len(seen) != len(want) {
		t.Fatalf("outcomes %+v, want %v", got, want)
	}
	for k, n := range want {
		if seen[k] != n {
			t.Fatalf("outcomes %+v, want %v", got, want)
		}
	}
}
