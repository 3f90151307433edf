package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/store"
)

type usageAnswer struct {
	IsValid   bool       `json:"isValid"`
	PlanName  string     `json:"planName"`
	Mode      string     `json:"mode"`
	Remaining float64    `json:"remaining"`
	Unlimited bool       `json:"unlimited"`
	Unit      string     `json:"unit"`
	ExpiresAt *time.Time `json:"expiresAt"`
}

// TestClientUsageAndTelemetry: GET /v1/usage answers a key's remaining balance, or what is
// left of its subscription's tightest window, in USD; an unknown key is the gateway's 401;
// Claude Code's telemetry batch is answered 200. On SQLite and on PostgreSQL + Redis.
func TestClientUsageAndTelemetry(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { checkUsage(t, gatewaytest.NewDeps(t, gatewaytest.Deps{})) })
	t.Run("postgres+redis", func(t *testing.T) { checkUsage(t, pgRedisDeps(t, gatewaytest.Deps{})) })
}

func checkUsage(t *testing.T, d *gatewaytest.Deps) {
	ctx := context.Background()
	node := gatewaytest.Start(t, d, testConfig(), "n1", nil)
	get := func(t *testing.T, header, key string) (*http.Response, usageAnswer) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, node.URL+"/v1/usage", nil)
		req.Header.Set(header, key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := readBody(t, resp)
		var a usageAnswer
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(b, &a); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
		}
		return resp, a
	}

	rich := gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{Balance: 12_500_000_000}) // $12.50
	if resp, a := get(t, "X-Api-Key", rich.Secret); resp.StatusCode != 200 ||
		a != (usageAnswer{IsValid: true, PlanName: rich.Group.Name, Mode: "balance", Remaining: 12.5, Unit: "USD"}) {
		t.Fatalf("balance key: %d %+v", resp.StatusCode, a)
	}
	broke := gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{Balance: -1})
	if resp, a := get(t, "Authorization", "Bearer "+broke.Secret); resp.StatusCode != 200 || a.IsValid || a.Remaining != 0 {
		t.Fatalf("used-up key: %d %+v", resp.StatusCode, a)
	}
	if resp, _ := get(t, "X-Api-Key", "fk-not-a-key"); resp.StatusCode != 401 || resp.Header.Get(gateway.HeaderReject) != gateway.RejectKey {
		t.Fatalf("unknown key: %d %q", resp.StatusCode, resp.Header.Get(gateway.HeaderReject))
	}

	g := &store.Group{Name: "usage-sub", Platform: store.PlatformAnthropic, BillingType: store.BillingSubscription,
		RateMultiplierPPM: 1_000_000, DailyLimit: 20_000_000_000, WeeklyLimit: 50_000_000_000, Status: store.StatusActive}
	if err := d.Store.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	subscriber := gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{Group: g, Balance: -1})
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	sub := &store.Subscription{UserID: subscriber.User.ID, GroupID: g.ID, StartsAt: start, ExpiresAt: start.Add(30 * 24 * time.Hour),
		DailyUsed: 15_000_000_000, DailyStart: start, WeeklyUsed: 32_000_000_000, WeeklyStart: start}
	if err := d.Store.CreateSubscription(ctx, sub); err != nil {
		t.Fatal(err)
	}
	// Daily: $5 left; weekly: $18 left. The tighter one is what remains.
	resp, a := get(t, "X-Api-Key", subscriber.Secret)
	if resp.StatusCode != 200 || !a.IsValid || a.Mode != "subscription" || a.Remaining != 5 || a.Unlimited ||
		a.ExpiresAt == nil || !a.ExpiresAt.Equal(sub.ExpiresAt) {
		t.Fatalf("subscription key: %d %+v", resp.StatusCode, a)
	}

	tel, err := http.Post(node.URL+"/api/event_logging/batch", "application/json",
		strings.NewReader(`{"events":[{"event_type":"ClaudeCodeInternalEvent","event_data":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Body.Close()
	if b := readBody(t, tel); tel.StatusCode != 200 || !json.Valid(b) {
		t.Fatalf("telemetry: %d %s", tel.StatusCode, b)
	}
}
