package gateway_test

import (
	"github.com/tidwall/gjson"

	"context"
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

// countedRedis is a coordinator on a fresh Redis whose round trips counter counts, and a
// configuration under which nothing but requests talks to Redis while counting: no
// heartbeat, no billing notification (its invalidations are
// TestChargedUserRefusedOnOtherNode's subject).
func countedRedis(t *testing.T) (*redis.Coordinator, *redis.CommandCounter, gateway.Config) {
	t.Helper()
	counter := new(redis.CommandCounter)
	co, err := redis.New(context.Background(), redis.Options{URL: testenv.StartRedis(t).URL(), Counter: counter})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	cfg := testConfig()
	cfg.SlotTTL = time.Hour
	cfg.BillNotifyInterval = time.Hour
	return co, counter, cfg
}

// TestTwoRedisRoundTripsPerRequest: on a real Redis, a billed request costs the node one
// call to start (binding, account choice and the user's, key's and account's slots) and one
// release, whether it opens a session, continues one or streams (issue 5: at most 3 on the
// hot path).
func TestTwoRedisRoundTripsPerRequest(t *testing.T) {
	co, counter, cfg := countedRedis(t)
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{Coord: co})
	node := gatewaytest.Start(t, d, cfg, "n1", nil)
	ten := gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{UserConcurrency: 10, KeyConcurrency: 10})
	gatewaytest.NewAccount(t, d, "up-a", []int64{ten.Group.ID}, func(a *store.Account) { a.Concurrency = 10 })
	gatewaytest.NewAccount(t, d, "up-b", []int64{ten.Group.ID}, func(a *store.Account) { a.Concurrency = 10; a.Priority = 60 })

	send := func(body, session string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, node.URL+"/v1/messages", strings.NewReader(body))
		req.Header.Set("X-Api-Key", ten.Secret)
		if session != "" {
			req.Header.Set("X-Claude-Code-Session-Id", session)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b := readBody(t, resp)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
	}
	send(jsonBody, "warm-up") // loads the scripts and the caches
	cases := []struct{ name, body, session string }{
		{"new session", jsonBody, "s1"},
		{"bound session", jsonBody, "s1"},
		{"stream, new session", streamBody, "s2"},
		{"stream, bound session", streamBody, "s2"},
		{"no session header (the first message names the conversation)", jsonBody, ""},
	}
	for _, c := range cases {
		counter.Reset()
		send(c.body, c.session)
		if got := counter.RoundTrips(); got != 2 {
			t.Errorf("%s: %d Redis round trips, want 2 (acquire, release)", c.name, got)
		}
	}
	for _, key := range []string{gateway.UserSlotKey(ten.User.ID), gateway.KeySlotKey(ten.Key.ID)} {
		if n, err := co.SlotCount(context.Background(), key); err != nil || n != 0 {
			t.Errorf("%s holds %d slots after every request ended (%v)", key, n, err)
		}
	}
}

// TestStoredResponseCostsTwoRedisRoundTrips: an OpenAI answer the upstream keeps (store is
// on by default) is bound to its account in the same call that releases the slots, so it
// costs Redis no more than any request (TestResponseChainStaysOnItsAccount shows the binding
// is found).
func TestStoredResponseCostsTwoRedisRoundTrips(t *testing.T) {
	co, counter, cfg := countedRedis(t)
	e := newOAIEnvWith(t, co, cfg, gatewaytest.TenantOptions{UserConcurrency: 10, KeyConcurrency: 10})
	e.account(t, "oa-a", 10)
	e.account(t, "oa-b", 20)

	send := func(body string) string {
		t.Helper()
		resp := e.do(t, http.MethodPost, "/v1/responses", body, bearer(e.oai.Secret))
		b := readBody(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		return gjson.GetBytes(b, "id").Str
	}
	send(`{"model":"gpt-6-sol","input":"warm up"}`) // loads the scripts and the caches
	counter.Reset()
	id := send(`{"model":"gpt-6-sol","input":"hello"}`)
	if got := counter.RoundTrips(); got != 2 {
		t.Errorf("a stored answer: %d Redis round trips, want 2 (acquire; release and bind)", got)
	}
	if id == "" {
		t.Fatal("the answer has no id")
	}
	counter.Reset()
	send(`{"model":"gpt-6-sol","input":"next","previous_response_id":"` + id + `"}`)
	if got := counter.RoundTrips(); got != 2 {
		t.Errorf("a continuing request: %d Redis round trips, want 2", got)
	}
	for _, key := range []string{gateway.UserSlotKey(e.oai.User.ID), gateway.KeySlotKey(e.oai.Key.ID)} {
		if n, err := co.SlotCount(context.Background(), key); err != nil || n != 0 {
			t.Errorf("%s holds %d slots after every request ended (%v)", key, n, err)
		}
	}
}

// TestChargedUserRefusedOnOtherNode: the balance in the store is the truth; a node that
// cached a user's positive balance stops admitting the user soon after another node's
// billing used it up, long before its cache would expire. Node b is only asked token counts,
// which it admits like messages but never bills, so nothing of its own refreshes its copy.
func TestChargedUserRefusedOnOtherNode(t *testing.T) {
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{})
	cfg := testConfig()
	cfg.AuthCacheTTL = time.Hour // only the invalidation can end the cached balance
	a := gatewaytest.Start(t, d, cfg, "a", nil)
	b := gatewaytest.Start(t, d, cfg, "b", nil)
	ten := gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{Balance: 1}) // one nano-USD
	gatewaytest.NewAccount(t, d, "up-charge", []int64{ten.Group.ID}, nil)

	post := func(n *gatewaytest.Node, path string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, n.URL+path, strings.NewReader(uniqueBody("spend")))
		req.Header.Set("X-Api-Key", ten.Secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		resp.Body.Close()
		if resp.StatusCode == 402 && resp.Header.Get(gateway.HeaderReject) != gateway.RejectBalance {
			t.Fatalf("402 without the balance refusal header")
		}
		return resp.StatusCode
	}
	if code := post(b, "/v1/messages/count_tokens"); code != 200 {
		t.Fatalf("node b caching the balance: status %d", code)
	}
	if code := post(a, "/v1/messages"); code != 200 {
		t.Fatalf("node a spending the balance: status %d", code)
	}
	waitFor(t, func() bool { return gatewaytest.Balance(t, d.Store, ten.User.ID) < 0 })
	waitFor(t, func() bool { return post(b, "/v1/messages/count_tokens") == 402 })
}
