package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord/redis"
	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	"github.com/fluxcode/fluxcode/internal/provider/gemini"
	"github.com/fluxcode/fluxcode/internal/provider/openai"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// protocolCase is one protocol's generation route, how its clients send the key, a valid
// body, and where its accounts reach the mock upstream.
type protocolCase struct {
	name, platform, path, body, badBody string
	keyHeader, scheme                   string
	baseURL                             func(mock string) string
}

var refusalProtocols = []protocolCase{
	{name: "anthropic", platform: store.PlatformAnthropic, path: "/v1/messages", body: jsonBody, badBody: `{"model":`,
		keyHeader: "X-Api-Key", baseURL: func(u string) string { return u }},
	{name: "openai", platform: store.PlatformOpenAI, path: "/v1/chat/completions",
		body:    `{"model":"gpt-6-sol","messages":[{"role":"user","content":"hi"}]}`,
		badBody: `{"model":`, keyHeader: "Authorization", scheme: "Bearer ", baseURL: func(u string) string { return u + "/v1" }},
	{name: "gemini", platform: store.PlatformGemini, path: "/v1beta/models/gemini-3.8-flash:generateContent",
		body: `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`, badBody: `{"contents":`,
		keyHeader: "X-Goog-Api-Key", baseURL: func(u string) string { return u }},
}

// TestRefusalsMarked: every refusal of the gateway's own, on every protocol, carries
// X-Fluxcode-Reject with its reason, a message starting "FluxCode:", and Retry-After exactly
// when a retry can succeed; an upstream 429 reported after failover is not marked as the
// gateway's and keeps the upstream's retry-after. On SQLite with the in-process coordinator,
// and on PostgreSQL with Redis.
func TestRefusalsMarked(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		checkRefusals(t, gatewaytest.NewDeps(t, gatewaytest.Deps{Providers: allProviders()}))
	})
	t.Run("postgres+redis", func(t *testing.T) {
		checkRefusals(t, pgRedisDeps(t, gatewaytest.Deps{Providers: allProviders()}))
	})
}

func allProviders() []provider.Provider {
	return []provider.Provider{anthropic.New(), openai.New(), gemini.New()}
}

// pgRedisDeps fills d with a PostgreSQL store and a Redis coordinator, both real servers.
func pgRedisDeps(t *testing.T, d gatewaytest.Deps) *gatewaytest.Deps {
	t.Helper()
	pg := testenv.StartPostgres(t)
	if err := pg.CreateDB("gw"); err != nil {
		t.Fatal(err)
	}
	d.Keys = gatewaytest.NewKeys(t)
	db, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: pg.DSN("gw"), Keys: d.Keys, MaxOpenConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := testenv.StartRedis(t)
	co, err := redis.New(context.Background(), redis.Options{URL: r.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	d.Store, d.Coord = db, co
	return gatewaytest.NewDeps(t, d)
}

func checkRefusals(t *testing.T, d *gatewaytest.Deps) {
	node := gatewaytest.Start(t, d, testConfig(), "n1", nil)
	for _, p := range refusalProtocols {
		t.Run(p.name, func(t *testing.T) {
			group := func(name string) *store.Group {
				g := &store.Group{Name: p.name + "-" + name, Platform: p.platform, BillingType: store.BillingBalance,
					RateMultiplierPPM: 1_000_000, Status: store.StatusActive}
				if err := d.Store.CreateGroup(context.Background(), g); err != nil {
					t.Fatal(err)
				}
				return g
			}
			served := gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{Group: group("served")})
			broke := gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{Group: served.Group, Balance: -1})
			empty := gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{Group: group("empty")})
			upKey := "up-refusal-" + p.name
			gatewaytest.NewAccount(t, d, upKey, []int64{served.Group.ID}, func(a *store.Account) {
				a.Platform, a.BaseURL = p.platform, p.baseURL(d.Mock.URL())
			})

			cases := []struct {
				name, key, body string
				setup           func()
				status          int // 0: the protocol's own status for the kind, not checked
				reject          string
				retryAfter      string // "" none, "*" any positive, else exactly
			}{
				{name: "unknown key", key: "fk-not-a-key", body: p.body, reject: gateway.RejectKey},
				{name: "missing key", key: "", body: p.body, reject: gateway.RejectKey},
				{name: "bad body", key: served.Secret, body: p.badBody, status: 400, reject: gateway.RejectRequest},
				{name: "balance", key: broke.Secret, body: p.body, status: 402, reject: gateway.RejectBalance},
				{name: "no account", key: empty.Secret, body: p.body, status: 503, reject: gateway.RejectNoAccount, retryAfter: "*"},
				{name: "upstream 429", key: served.Secret, body: p.body, status: 429, retryAfter: "37", setup: func() {
					err := d.Mock.SetScript(upKey, mockupstream.Script{FailTimes: 1,
						Fail: &mockupstream.Failure{Status: 429, RetryAfter: 37 * time.Second}})
					if err != nil {
						t.Fatal(err)
					}
				}},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					if tc.setup != nil {
						tc.setup()
					}
					req, err := http.NewRequest(http.MethodPost, node.URL+p.path, strings.NewReader(tc.body))
					if err != nil {
						t.Fatal(err)
					}
					req.Header.Set("Content-Type", "application/json")
					if tc.key != "" {
						req.Header.Set(p.keyHeader, p.scheme+tc.key)
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					b := string(readBody(t, resp))
					desc := fmt.Sprintf("status %d, %s %q, Retry-After %q: %s", resp.StatusCode, gateway.HeaderReject,
						resp.Header.Get(gateway.HeaderReject), resp.Header.Get("Retry-After"), b)
					if resp.StatusCode < 400 || tc.status != 0 && resp.StatusCode != tc.status {
						t.Fatalf("%s; want status %d", desc, tc.status)
					}
					if got := resp.Header.Get(gateway.HeaderReject); got != tc.reject {
						t.Fatalf("%s; want reason %q", desc, tc.reject)
					}
					if own := strings.Contains(b, `"FluxCode: `); own != (tc.reject != "") {
						t.Fatalf("%s; the message starts with FluxCode: %v, want %v", desc, own, tc.reject != "")
					}
					switch got := resp.Header.Get("Retry-After"); tc.retryAfter {
					case "*":
						if got == "" || got == "0" {
							t.Fatalf("%s; want a Retry-After", desc)
						}
						if resp.Header.Get("X-Should-Retry") != "true" {
							t.Fatalf("%s; want x-should-retry: true", desc)
						}
					default:
						if got != tc.retryAfter {
							t.Fatalf("%s; want Retry-After %q", desc, tc.retryAfter)
						}
					}
				})
			}
		})
	}
}
