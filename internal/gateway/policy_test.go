package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/store"
)

// policyTenant creates a tenant of d whose key and user carry the given policy.
func policyTenant(t *testing.T, d *gatewaytest.Deps, group *store.Group, key func(*store.APIKey), user func(*store.User)) *gatewaytest.Tenant {
	t.Helper()
	ten := gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{Group: group})
	ctx := context.Background()
	if key != nil {
		key(ten.Key)
		if err := d.Store.UpdateAPIKey(ctx, ten.Key); err != nil {
			t.Fatal(err)
		}
	}
	if user != nil {
		user(ten.User)
		if err := d.Store.UpdateUser(ctx, ten.User); err != nil {
			t.Fatal(err)
		}
	}
	return ten
}

// sendAs posts body to /v1/messages of node with key and returns the status, the reject
// reason and Retry-After.
func sendAs(t *testing.T, nodeURL, key, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, nodeURL+"/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	readBody(t, resp)
	return resp.StatusCode, resp.Header.Get(gateway.HeaderReject), resp.Header.Get("Retry-After")
}

// TestKeyPolicies: a key's allowed models (exact and prefix), its allowed addresses, and the
// requests and tokens per minute of the key and of its user, refused with the gateway's 403
// policy or 429 rate (with Retry-After). On SQLite with the in-process coordinator, and on
// PostgreSQL with Redis.
func TestKeyPolicies(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { checkPolicies(t, gatewaytest.NewDeps(t, gatewaytest.Deps{})) })
	t.Run("postgres+redis", func(t *testing.T) { checkPolicies(t, pgRedisDeps(t, gatewaytest.Deps{})) })
}

func checkPolicies(t *testing.T, d *gatewaytest.Deps) {
	node := gatewaytest.Start(t, d, testConfig(), "n1", nil)
	group := gatewaytest.NewGroup(t, d.Store, 0)
	gatewaytest.NewAccount(t, d, "up-policy", []int64{group.ID}, nil)
	model := func(m string) string { return strings.Replace(jsonBody, "claude-sonnet-5-5", m, 1) }
	type send struct {
		body           string
		status         int
		reject         string
		wantRetryAfter bool
	}
	served := send{jsonBody, 200, "", false}
	cases := []struct {
		name  string
		key   func(*store.APIKey)
		user  func(*store.User)
		sends []send
	}{
		{"exact model", func(k *store.APIKey) { k.AllowedModels = []string{"claude-sonnet-5-5"} }, nil,
			[]send{served, {model("claude-opus-5"), 403, gateway.RejectPolicy, false}}},
		{"prefix model", func(k *store.APIKey) { k.AllowedModels = []string{"claude-haiku-9", "claude-sonnet-*"} }, nil,
			[]send{served, {model("claude-opus-5"), 403, gateway.RejectPolicy, false}}},
		{"address allowed", func(k *store.APIKey) { k.AllowedIPs = []string{"10.0.0.0/8", "127.0.0.0/8"} }, nil, []send{served}},
		{"address refused", func(k *store.APIKey) { k.AllowedIPs = []string{"10.0.0.0/8", "192.0.2.7"} }, nil,
			[]send{{jsonBody, 403, gateway.RejectPolicy, false}}},
		{"key rpm", func(k *store.APIKey) { k.RPMLimit = 2 }, nil,
			[]send{served, served, {jsonBody, 429, gateway.RejectRate, true}}},
		{"user rpm", nil, func(u *store.User) { u.RPMLimit = 1 },
			[]send{served, {jsonBody, 429, gateway.RejectRate, true}}},
		// The first answer's tokens fill the window; the next request is refused.
		{"key tpm", func(k *store.APIKey) { k.TPMLimit = 5 }, nil,
			[]send{served, {jsonBody, 429, gateway.RejectRate, true}}},
		{"user tpm", nil, func(u *store.User) { u.TPMLimit = 5 },
			[]send{served, {jsonBody, 429, gateway.RejectRate, true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ten := policyTenant(t, d, group, tc.key, tc.user)
			for i, s := range tc.sends {
				status, reject, retry := sendAs(t, node.URL, ten.Secret, s.body)
				if status != s.status || reject != s.reject || (retry != "") != s.wantRetryAfter {
					t.Fatalf("request %d: status %d reject %q retry-after %q; want %d %q (retry-after %v)",
						i+1, status, reject, retry, s.status, s.reject, s.wantRetryAfter)
				}
			}
		})
	}
}

// TestRPMAcrossTwoNodes: a key limited to 60 requests a minute, sent 200 at once spread
// over two nodes sharing PostgreSQL and Redis, is served exactly 60 times.
func TestRPMAcrossTwoNodes(t *testing.T) {
	d := pgRedisDeps(t, gatewaytest.Deps{})
	nodes := []*gatewaytest.Node{
		gatewaytest.Start(t, d, testConfig(), "n1", nil),
		gatewaytest.Start(t, d, testConfig(), "n2", nil),
	}
	group := gatewaytest.NewGroup(t, d.Store, 0)
	gatewaytest.NewAccount(t, d, "up-rpm", []int64{group.ID}, nil)
	ten := policyTenant(t, d, group, func(k *store.APIKey) { k.RPMLimit = 60 }, nil)
	var served, limited atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for i := range 200 {
		wg.Go(func() {
			status, reject, _ := sendAs(t, nodes[i%2].URL, ten.Secret, jsonBody)
			switch {
			case status == 200:
				served.Add(1)
			case status == 429 && reject == gateway.RejectRate:
				limited.Add(1)
			default:
				errs <- fmt.Sprintf("status %d reject %q", status, reject)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if served.Load() != 60 || limited.Load() != 140 {
		t.Fatalf("served %d, refused for rate %d; want exactly 60 and 140", served.Load(), limited.Load())
	}
	if n := d.Mock.Stats("up-rpm").Requests; n != 60 {
		t.Fatalf("the upstream got %d requests, want 60", n)
	}
}
