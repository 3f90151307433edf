package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/store"
)

// concurrently sends n streaming requests of distinct conversations and returns their
// statuses.
func concurrently(t *testing.T, e *env, n int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf(`{"model":"claude-sonnet-5-5","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"conversation %d"}]}`, i)
			req, _ := http.NewRequest(http.MethodPost, e.node.URL+"/v1/messages", strings.NewReader(body))
			req.Header.Set("X-Api-Key", e.tenant.Secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			b := readBody(t, resp)
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
			if resp.StatusCode != 200 || strings.Contains(string(b), "event: error") {
				t.Errorf("request %d: status %d: %.300s", i, resp.StatusCode, b)
			}
		})
	}
	wg.Wait()
	return statuses
}

func TestAccountLimitHolds(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-limited", func(a *store.Account) { a.Concurrency = 3 })
	if err := e.Mock.SetScript("up-limited", mockupstream.Script{Events: 10, Interval: 2 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	concurrently(t, e, 50)
	st := e.Mock.Stats("up-limited")
	if st.PeakInFlight > 3 || st.Requests != 50 {
		t.Fatalf("peak in flight %d (limit 3), requests %d (want 50)", st.PeakInFlight, st.Requests)
	}
	usageRows(t, e.Store, e.tenant.User.ID, 50)
}

func TestUserAndKeyLimitsHold(t *testing.T) {
	for _, c := range []struct {
		name string
		o    gatewaytest.TenantOptions
	}{
		{"User", gatewaytest.TenantOptions{UserConcurrency: 2}},
		{"Key", gatewaytest.TenantOptions{KeyConcurrency: 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, testConfig(), c.o)
			for _, k := range []string{"up-1", "up-2", "up-3"} {
				e.account(t, k, nil) // unlimited accounts: only the tenant's limit binds
				if err := e.Mock.SetScript(k, mockupstream.Script{Events: 10, Interval: 2 * time.Millisecond}); err != nil {
					t.Fatal(err)
				}
			}
			var peak, total int64
			var mu sync.Mutex
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() { // the tenant's in-flight count is the sum over its accounts
				defer close(done)
				for {
					select {
					case <-stop:
						return
					default:
					}
					var sum int64
					for _, k := range []string{"up-1", "up-2", "up-3"} {
						sum += e.Mock.Stats(k).InFlight
					}
					mu.Lock()
					peak = max(peak, sum)
					mu.Unlock()
					time.Sleep(200 * time.Microsecond)
				}
			}()
			concurrently(t, e, 20)
			close(stop)
			<-done
			for _, k := range []string{"up-1", "up-2", "up-3"} {
				total += e.Mock.Stats(k).Requests
			}
			if peak > 2 || total != 20 {
				t.Fatalf("peak in flight %d (limit 2), requests %d", peak, total)
			}
		})
	}
}

// TestWaitQueue: with a user limit of 1 and room for one waiter, a third request is refused
// as queue_full; the waiter is served when the slot frees.
func TestWaitQueue(t *testing.T) {
	cfg := testConfig()
	cfg.WaitQueueMax = 1
	e := newEnv(t, cfg, gatewaytest.TenantOptions{UserConcurrency: 1})
	e.account(t, "up-q", nil)
	release := e.tap.Hold(t, "holder") // the first request holds the only slot until released
	statuses := make(chan int, 2)
	send := func(tag string) {
		req, _ := http.NewRequest(http.MethodPost, e.node.URL+"/v1/messages", strings.NewReader(uniqueBody(tag)))
		req.Header.Set("X-Api-Key", e.tenant.Secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			statuses <- 0
			return
		}
		readBody(t, resp)
		resp.Body.Close()
		statuses <- resp.StatusCode
	}
	go send("holder")
	waitFor(t, func() bool { return len(e.tap.Exchanges()) == 1 })
	go send("waiter")
	waitFor(t, func() bool {
		n, _ := e.Coord.SlotCount(context.Background(), "wait:user:"+fmt.Sprint(e.tenant.User.ID))
		return n == 1
	})

	resp := e.post(t, "/v1/messages", uniqueBody("third"), nil)
	readBody(t, resp)
	if resp.StatusCode != 429 || resp.Header.Get(gateway.HeaderReject) != gateway.RejectQueueFull || resp.Header.Get("X-Should-Retry") != "true" {
		t.Fatalf("third request: status %d reject %q, want 429 queue_full", resp.StatusCode, resp.Header.Get(gateway.HeaderReject))
	}
	if n := len(e.tap.Exchanges()); n != 1 {
		t.Fatalf("%d upstream requests while the slot was held, want 1", n)
	}
	release()
	for range 2 {
		if s := <-statuses; s != 200 {
			t.Fatalf("holder or waiter got %d, want both served", s)
		}
	}
	if n := e.Mock.Stats("up-q").PeakInFlight; n != 1 {
		t.Fatalf("peak in flight %d with a user limit of 1", n)
	}
}

// TestWaitingStreamGetsPingsThenOneError: a streaming client that waits past the timeout
// receives pings, then exactly one error event (the status was already 200).
func TestWaitingStreamGetsPingsThenOneError(t *testing.T) {
	cfg := testConfig()
	cfg.PingInterval = 20 * time.Millisecond
	cfg.WaitTimeout = 300 * time.Millisecond
	e := newEnv(t, cfg, gatewaytest.TenantOptions{KeyConcurrency: 1})
	e.account(t, "up-p", nil)
	e.tap.Hold(t, "holder")
	go func() {
		req, _ := http.NewRequest(http.MethodPost, e.node.URL+"/v1/messages", strings.NewReader(uniqueBody("holder")))
		req.Header.Set("X-Api-Key", e.tenant.Secret)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, func() bool { return len(e.tap.Exchanges()) == 1 })

	resp := e.post(t, "/v1/messages", streamBody, nil)
	got := string(readBody(t, resp))
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if strings.Count(got, "event: ping") < 2 || strings.Count(got, "event: error") != 1 || !strings.Contains(got, "rate_limit_error") {
		t.Fatalf("want pings then one rate_limit_error event, got:\n%s", got)
	}
	if !strings.HasSuffix(got, "}\n\n") || strings.LastIndex(got, "event: ping") > strings.Index(got, "event: error") {
		t.Fatalf("the error event is not the last event:\n%s", got)
	}
}

func TestAdmissionRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("Balance", func(t *testing.T) {
		e := newEnv(t, testConfig(), gatewaytest.TenantOptions{Balance: -1})
		e.account(t, "up-b", nil)
		resp := e.post(t, "/v1/messages", jsonBody, nil)
		b := readBody(t, resp)
		if resp.StatusCode != 402 || resp.Header.Get(gateway.HeaderReject) != gateway.RejectBalance || !strings.Contains(string(b), "billing_error") {
			t.Fatalf("status %d reject %q: %s", resp.StatusCode, resp.Header.Get(gateway.HeaderReject), b)
		}
	})
	subscriptionEnv := func(t *testing.T, sub *store.Subscription) *env {
		d := gatewaytest.NewDeps(t, gatewaytest.Deps{})
		g := &store.Group{Name: "sub", Platform: store.PlatformAnthropic, BillingType: store.BillingSubscription,
			RateMultiplierPPM: 1_000_000, DailyLimit: 1_000_000, Status: store.StatusActive}
		if err := d.Store.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
		e := &env{Deps: d, tap: gatewaytest.NewTap(t, d.Mock), clock: &gatewaytest.Clock{}}
		e.node = gatewaytest.Start(t, d, testConfig(), "n1", e.clock.Now)
		e.tenant = gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{Group: g, Balance: -1})
		if sub != nil {
			sub.UserID, sub.GroupID = e.tenant.User.ID, g.ID
			if err := d.Store.CreateSubscription(ctx, sub); err != nil {
				t.Fatal(err)
			}
		}
		e.account(t, "up-s", nil)
		return e
	}
	t.Run("NoSubscription", func(t *testing.T) {
		e := subscriptionEnv(t, nil)
		resp := e.post(t, "/v1/messages", jsonBody, nil)
		b := readBody(t, resp)
		if resp.StatusCode != 403 || resp.Header.Get(gateway.HeaderReject) != gateway.RejectSubscription {
			t.Fatalf("status %d reject %q: %s", resp.StatusCode, resp.Header.Get(gateway.HeaderReject), b)
		}
	})
	t.Run("WindowFull", func(t *testing.T) {
		start := time.Now().Add(-time.Hour)
		e := subscriptionEnv(t, &store.Subscription{StartsAt: start, ExpiresAt: start.Add(30 * 24 * time.Hour), DailyUsed: 1_000_000})
		resp := e.post(t, "/v1/messages", jsonBody, nil)
		b := readBody(t, resp)
		// The daily window started an hour ago: it restarts in about 23 hours.
		retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != 429 || resp.Header.Get(gateway.HeaderReject) != gateway.RejectSubscription ||
			retry < 82000 || retry > 82800 || resp.Header.Get("X-Should-Retry") != "false" {
			t.Fatalf("status %d headers %v: %s", resp.StatusCode, resp.Header, b)
		}
		if n := e.Mock.Stats("up-s").Requests; n != 0 {
			t.Fatalf("a refused request reached the upstream")
		}
	})
	t.Run("SubscriptionWithRoomIsServedAndCharged", func(t *testing.T) {
		start := time.Now().Add(-time.Hour)
		e := subscriptionEnv(t, &store.Subscription{StartsAt: start, ExpiresAt: start.Add(30 * 24 * time.Hour)})
		resp := e.post(t, "/v1/messages", jsonBody, nil)
		readBody(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		row := usageRows(t, e.Store, e.tenant.User.ID, 1)[0]
		sub, err := e.Store.GetSubscription(ctx, e.tenant.User.ID, e.tenant.Group.ID)
		if err != nil {
			t.Fatal(err)
		}
		if row.BillingType != store.BillingSubscription || sub.DailyUsed != row.Charged || row.Charged <= 0 {
			t.Fatalf("row %+v, daily used %d", row, sub.DailyUsed)
		}
		// The window is now over its (tiny) limit: the next request is refused.
		resp = e.post(t, "/v1/messages", uniqueBody("next"), nil)
		readBody(t, resp)
		if resp.StatusCode != 429 || resp.Header.Get(gateway.HeaderReject) != gateway.RejectSubscription {
			t.Fatalf("after the window filled: status %d", resp.StatusCode)
		}
	})
}

// waitFor polls cond until it holds (bounded; it fails the test after 10 s).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestSlotsFreeWhenTheAnswerEnds: with a user limit of 1 and no wait queue, a client that
// sends its next request the moment it has read an answer's end is never refused: the slots
// are given back before the end is sent, JSON and streaming alike.
func TestSlotsFreeWhenTheAnswerEnds(t *testing.T) {
	cfg := testConfig()
	cfg.WaitQueueMax = 0 // a full user is refused at once
	e := newEnv(t, cfg, gatewaytest.TenantOptions{UserConcurrency: 1})
	e.account(t, "up-seq", nil)
	for i := range 30 {
		body := uniqueBody(fmt.Sprint("seq ", i))
		if i%2 == 1 {
			body = strings.Replace(body, `"max_tokens"`, `"stream":true,"max_tokens"`, 1)
		}
		resp := e.post(t, "/v1/messages", body, nil)
		got := readBody(t, resp)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d, sent as the previous answer ended: status %d %s: %s",
				i, resp.StatusCode, resp.Header.Get(gateway.HeaderReject), got)
		}
	}
	if n, _ := e.Coord.SlotCount(context.Background(), gateway.UserSlotKey(e.tenant.User.ID)); n != 0 {
		t.Fatalf("%d user slots held after the last answer", n)
	}
}
