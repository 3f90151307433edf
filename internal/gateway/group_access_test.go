package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/invalidate"
)

// TestExclusiveGroupRefusesKeysOfOthers: a key bound while its group was open is refused
// (403, the gateway's "forbidden") once the group becomes exclusive without its user, and
// served again once the user is allowed on it. Nothing refused reaches the upstream.
func TestExclusiveGroupRefusesKeysOfOthers(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-ex", nil)
	status := func() (int, string, []byte) {
		resp := e.post(t, "/v1/messages", jsonBody, nil)
		return resp.StatusCode, resp.Header.Get(gateway.HeaderReject), readBody(t, resp)
	}
	if code, _, b := status(); code != http.StatusOK {
		t.Fatalf("open group: status %d: %s", code, b)
	}

	g := e.tenant.Group
	g.Exclusive = true
	if err := e.Store.UpdateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := invalidate.Publish(ctx, e.Coord, invalidate.Group, g.ID); err != nil {
		t.Fatal(err)
	}
	before := e.Mock.Stats("up-ex").Requests
	var b []byte
	waitFor(t, func() bool {
		code, reject, body := status()
		b = body
		return code == http.StatusForbidden && reject == gateway.RejectForbidden
	})
	var ae anthropicError
	if err := json.Unmarshal(b, &ae); err != nil || ae.Error.Type != "permission_error" {
		t.Fatalf("refusal body %s (%v), want an Anthropic permission_error", b, err)
	}
	if n := e.Mock.Stats("up-ex").Requests; n != before {
		t.Fatalf("refused requests reached the upstream: %d, want %d", n, before)
	}

	if err := e.Store.SetUserGroups(ctx, e.tenant.User.ID, []int64{g.ID}); err != nil {
		t.Fatal(err)
	}
	if err := invalidate.Publish(ctx, e.Coord, invalidate.User, e.tenant.User.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { code, _, _ := status(); return code == http.StatusOK })
}
