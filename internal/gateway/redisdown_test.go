package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord/redis"
	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// redisEnv is an env whose coordinator is a real Redis the test can stop and start.
func redisEnv(t *testing.T, cfg gateway.Config, r *testenv.Redis) (*env, *redis.Coordinator) {
	t.Helper()
	co, err := redis.New(context.Background(), redis.Options{URL: r.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{Coord: co})
	e := &env{Deps: d, tap: gatewaytest.NewTap(t, d.Mock), clock: &gatewaytest.Clock{}}
	e.node = gatewaytest.Start(t, d, cfg, "n1", e.clock.Now)
	e.tenant = gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{})
	return e, co
}

// TestRedisDownIs503: with the coordinator unreachable no limit can be checked, so nothing
// is admitted: 503 overloaded_error marked as the gateway's (X-Fluxcode-Reject:
// coordination) and retryable; once Redis is back the node serves again by itself.
func TestRedisDownIs503(t *testing.T) {
	r := testenv.StartRedis(t)
	e, _ := redisEnv(t, testConfig(), r)
	e.account(t, "up-r", nil)
	if resp := e.post(t, "/v1/messages", jsonBody, nil); resp.StatusCode != 200 {
		t.Fatalf("before the outage: status %d: %s", resp.StatusCode, readBody(t, resp))
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{jsonBody, streamBody} {
		checkRetryable503(t, e.post(t, "/v1/messages", body, nil), gateway.RejectCoordination)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		resp := e.post(t, "/v1/messages", uniqueBody("back"), nil)
		readBody(t, resp)
		return resp.StatusCode == 200
	})
}

// TestFailedReleaseIsRetried: a request that ends while Redis is down cannot give its slot
// back; the node retries the release once Redis answers, so the slot does not stay taken
// until its lease expires (here an hour: only the retry can free it).
func TestFailedReleaseIsRetried(t *testing.T) {
	r := testenv.StartRedis(t, testenv.WithPersistence()) // the slot survives the restart
	cfg := testConfig()
	cfg.SlotTTL = time.Hour
	e, co := redisEnv(t, cfg, r)
	acct := e.account(t, "up-rel", func(a *store.Account) { a.Concurrency = 1 })
	slot := gateway.AccountSlotKey(acct.ID)
	count := func() int {
		n, err := co.SlotCount(context.Background(), slot)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	release := e.tap.Hold(t, "held while redis stops")
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, e.node.URL+"/v1/messages", strings.NewReader(uniqueBody("held while redis stops")))
		req.Header.Set("X-Api-Key", e.tenant.Secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	waitFor(t, func() bool { return count() == 1 })
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	release()
	if code := <-done; code != 200 {
		t.Fatalf("the held request: status %d", code)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return count() == 0 })
	if resp := e.post(t, "/v1/messages", uniqueBody("after"), nil); resp.StatusCode != 200 {
		t.Fatalf("after Redis came back: status %d: %s", resp.StatusCode, readBody(t, resp))
	}
}

// checkRetryable503 fails t unless resp is the gateway's own retryable refusal for reason: 503
// overloaded_error in Anthropic's shape, X-Fluxcode-Reject: reason, x-should-retry: true.
func checkRetryable503(t *testing.T, resp *http.Response, reason string) {
	t.Helper()
	b := readBody(t, resp)
	var msg struct {
		Type  string `json:"type"`
		Error struct{ Type, Message string }
	}
	if err := json.Unmarshal(b, &msg); err != nil {
		t.Fatalf("not an Anthropic error body: %s", b)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || msg.Type != "error" || msg.Error.Type != "overloaded_error" ||
		resp.Header.Get(gateway.HeaderReject) != reason || resp.Header.Get("X-Should-Retry") != "true" {
		t.Fatalf("want a retryable 503 (%s): status %d, headers %v, body %s", reason, resp.StatusCode, resp.Header, b)
	}
}
