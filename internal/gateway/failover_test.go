package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/store"
)

func getAccount(t *testing.T, st store.Store, id int64) *store.Account {
	t.Helper()
	a, err := st.GetAccount(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func near(got *time.Time, want time.Time, slack time.Duration) bool {
	return got != nil && got.Sub(want) <= slack && want.Sub(*got) <= slack
}

// TestFailoverPerClass: the first account fails once in each class; the request is served
// by the second account, the first carries the state its failure calls for, and the state
// ends when its time has passed (the node's clock is moved, nothing sleeps).
func TestFailoverPerClass(t *testing.T) {
	cfg := testConfig()
	cfg.OverloadCooldown = 7 * time.Minute
	cfg.RateLimitCooldown = 90 * time.Second
	cases := []struct {
		name string
		fail mockupstream.Failure
		// check inspects the failed account; it returns when the mark expires (zero: never
		// by itself, or nothing was marked).
		check func(t *testing.T, a *store.Account, sent time.Time) time.Time
	}{
		{"NetworkError", mockupstream.Failure{Kind: mockupstream.FailReset}, func(t *testing.T, a *store.Account, _ time.Time) time.Time {
			if !a.Available(time.Now()) {
				t.Errorf("a network error marked the account: %+v", a)
			}
			return time.Time{}
		}},
		{"401", mockupstream.Failure{Status: 401, Message: "invalid x-api-key"}, func(t *testing.T, a *store.Account, _ time.Time) time.Time {
			if a.Status != store.StatusError || !strings.Contains(a.ErrorMessage, "invalid x-api-key") || !strings.Contains(a.ErrorMessage, "401") {
				t.Errorf("after 401: status %q message %q", a.Status, a.ErrorMessage)
			}
			return time.Time{}
		}},
		{"403", mockupstream.Failure{Status: 403, Message: "organization disabled"}, func(t *testing.T, a *store.Account, _ time.Time) time.Time {
			if a.Status != store.StatusError || !strings.Contains(a.ErrorMessage, "organization disabled") {
				t.Errorf("after 403: status %q message %q", a.Status, a.ErrorMessage)
			}
			return time.Time{}
		}},
		{"429UnifiedReset", mockupstream.Failure{Status: 429, RetryAfter: 2 * time.Hour, RateLimit: mockupstream.RateLimitUnified, NoRetryAfter: true}, func(t *testing.T, a *store.Account, sent time.Time) time.Time {
			if !near(a.RateLimitedUntil, sent.Add(2*time.Hour), 3*time.Second) {
				t.Errorf("after 429: rate limited until %v, want about %v", a.RateLimitedUntil, sent.Add(2*time.Hour))
			}
			return *a.RateLimitedUntil
		}},
		{"429APIResetHeaders", mockupstream.Failure{Status: 429, RetryAfter: 40 * time.Minute, RateLimit: mockupstream.RateLimitAPI, NoRetryAfter: true}, func(t *testing.T, a *store.Account, sent time.Time) time.Time {
			if !near(a.RateLimitedUntil, sent.Add(40*time.Minute), 3*time.Second) {
				t.Errorf("after 429: rate limited until %v, want about %v", a.RateLimitedUntil, sent.Add(40*time.Minute))
			}
			return *a.RateLimitedUntil
		}},
		{"429RetryAfterOnly", mockupstream.Failure{Status: 429, RetryAfter: 25 * time.Minute, RateLimit: mockupstream.RateLimitNone}, func(t *testing.T, a *store.Account, sent time.Time) time.Time {
			if !near(a.RateLimitedUntil, sent.Add(25*time.Minute), 3*time.Second) {
				t.Errorf("after 429: rate limited until %v, want about %v", a.RateLimitedUntil, sent.Add(25*time.Minute))
			}
			return *a.RateLimitedUntil
		}},
		{"429NoHeaders", mockupstream.Failure{Status: 429, RateLimit: mockupstream.RateLimitNone, NoRetryAfter: true}, func(t *testing.T, a *store.Account, sent time.Time) time.Time {
			if !near(a.RateLimitedUntil, sent.Add(90*time.Second), 3*time.Second) {
				t.Errorf("after 429 without reset: until %v, want the default cooldown", a.RateLimitedUntil)
			}
			return *a.RateLimitedUntil
		}},
		{"529", mockupstream.Failure{Status: 529}, func(t *testing.T, a *store.Account, sent time.Time) time.Time {
			if !near(a.OverloadedUntil, sent.Add(7*time.Minute), 3*time.Second) {
				t.Errorf("after 529: overloaded until %v, want about %v", a.OverloadedUntil, sent.Add(7*time.Minute))
			}
			return *a.OverloadedUntil
		}},
		{"500", mockupstream.Failure{Status: 500}, func(t *testing.T, a *store.Account, _ time.Time) time.Time {
			if !a.Available(time.Now()) {
				t.Errorf("a 500 marked the account: %+v", a)
			}
			return time.Time{}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, cfg, gatewaytest.TenantOptions{})
			first := e.account(t, "up-first", func(a *store.Account) { a.Priority = 10 })
			e.account(t, "up-second", func(a *store.Account) { a.Priority = 20 })
			fail := c.fail
			// Unmarked failures repeat, so that the stream request fails over too; a marked
			// account is skipped afterwards anyway.
			times := 1
			if c.name == "NetworkError" || c.name == "500" {
				times = 0
			}
			if err := e.Mock.SetScript("up-first", mockupstream.Script{Fail: &fail, FailTimes: times}); err != nil {
				t.Fatal(err)
			}
			sent := time.Now()
			for _, body := range []string{jsonBody, streamBody} {
				resp := e.post(t, "/v1/messages", body, nil)
				got := readBody(t, resp)
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, got)
				}
				ex := e.tap.Exchanges()
				last := ex[len(ex)-1]
				if last.UpstreamK != "up-second" || !bytes.Equal(got, last.Body()) {
					t.Fatalf("served by %q; want the second account's answer relayed", last.UpstreamK)
				}
				if body == jsonBody {
					if n := len(ex); n != 2 {
						t.Fatalf("%d upstream attempts, want 2", n)
					}
				}
			}
			until := c.check(t, getAccount(t, e.Store, first.ID), sent)
			if until.IsZero() {
				return
			}
			// Before the mark ends the account is skipped; after it, it serves again.
			e.clock.Advance(until.Sub(time.Now()) - time.Minute)
			before := e.Mock.Stats("up-first").Requests
			// Each request is a new conversation, so stickiness does not keep it on the second.
			readBody(t, e.post(t, "/v1/messages", uniqueBody("before"), nil))
			if n := e.Mock.Stats("up-first").Requests; n != before {
				t.Fatalf("the marked account was used before its mark ended")
			}
			e.clock.Advance(2 * time.Minute)
			resp := e.post(t, "/v1/messages", uniqueBody("after"), nil)
			readBody(t, resp)
			if n := e.Mock.Stats("up-first").Requests; resp.StatusCode != 200 || n != before+1 {
				t.Fatalf("after the mark ended: status %d, first account requests %d→%d", resp.StatusCode, before, n)
			}
		})
	}
}

// TestErrorRuleMakesAccountTemporarilyUnschedulable: an admin rule turns a 403 that names
// a keyword into a pause instead of the error state.
func TestErrorRuleMakesAccountTemporarilyUnschedulable(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	if err := e.Store.CreateErrorRule(context.Background(), &store.ErrorRule{StatusCode: 403, Keyword: "Cloudflare", Minutes: 15, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	first := e.account(t, "up-first", func(a *store.Account) { a.Priority = 10 })
	e.account(t, "up-second", func(a *store.Account) { a.Priority = 20 })
	if err := e.Mock.SetScript("up-first", mockupstream.Script{Fail: &mockupstream.Failure{Status: 403, Message: "blocked by cloudflare edge"}, FailTimes: 1}); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	resp := e.post(t, "/v1/messages", jsonBody, nil)
	readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	a := getAccount(t, e.Store, first.ID)
	if a.Status != store.StatusActive || !near(a.TempUnschedUntil, sent.Add(15*time.Minute), 3*time.Second) || !strings.Contains(a.TempUnschedReason, "403") {
		t.Fatalf("status %q, temp-unschedulable until %v (%q)", a.Status, a.TempUnschedUntil, a.TempUnschedReason)
	}
}

// TestFailoverBounded: every account fails; at most MaxAccountSwitches+1 accounts are tried,
// none twice, and the client gets the last upstream error in Anthropic's format.
func TestFailoverBounded(t *testing.T) {
	cfg := testConfig()
	cfg.MaxAccountSwitches = 2
	e := newEnv(t, cfg, gatewaytest.TenantOptions{})
	keys := []string{"up-a", "up-b", "up-c", "up-d"}
	for _, k := range keys {
		e.account(t, k, nil)
		if err := e.Mock.SetScript(k, mockupstream.Script{Fail: &mockupstream.Failure{Status: 500, Message: "boom " + k}}); err != nil {
			t.Fatal(err)
		}
	}
	resp := e.post(t, "/v1/messages", jsonBody, nil)
	var body struct {
		Error struct{ Type, Message string } `json:"error"`
	}
	if err := json.Unmarshal(readBody(t, resp), &body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 500 || body.Error.Type != "api_error" || !strings.Contains(body.Error.Message, "boom") || resp.Header.Get(gateway.HeaderReject) != "" {
		t.Fatalf("got %d %+v (reject %q)", resp.StatusCode, body, resp.Header.Get(gateway.HeaderReject))
	}
	tried := 0
	for _, k := range keys {
		switch n := e.Mock.Stats(k).Requests; n {
		case 0:
		case 1:
			tried++
		default:
			t.Errorf("account %s tried %d times", k, n)
		}
	}
	if tried != 3 {
		t.Errorf("%d accounts tried, want MaxAccountSwitches+1 = 3", tried)
	}
}

// TestAllRateLimitedIsAnUpstream429: when every account is limited the client sees a 429
// that is not marked as the gateway's own refusal.
func TestAllRateLimitedIsAnUpstream429(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-only", nil)
	if err := e.Mock.SetScript("up-only", mockupstream.Script{Fail: &mockupstream.Failure{Status: 429}}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second finds no account left at all
		resp := e.post(t, "/v1/messages", jsonBody, nil)
		b := readBody(t, resp)
		if resp.StatusCode != 429 && i == 0 || resp.Header.Get(gateway.HeaderReject) != "" {
			t.Fatalf("request %d: status %d reject %q: %s", i, resp.StatusCode, resp.Header.Get(gateway.HeaderReject), b)
		}
		if i == 1 && resp.StatusCode != 503 {
			t.Fatalf("with no account left: status %d: %s", resp.StatusCode, b)
		}
	}
	if n := e.Mock.Stats("up-only").Requests; n != 1 {
		t.Errorf("the rate-limited account got %d requests, want 1", n)
	}
}

// TestMidStreamError: an upstream error after the first byte reaches the client as exactly
// one error event; the stream ends; no other account is tried; the account is marked.
func TestMidStreamError(t *testing.T) {
	for _, c := range []struct {
		name      string
		fail      mockupstream.Failure
		errorType string
	}{
		{"ErrorEvent", mockupstream.Failure{Kind: mockupstream.FailError, After: 4, ErrorType: "overloaded_error"}, "overloaded_error"},
		{"ConnectionDrop", mockupstream.Failure{Kind: mockupstream.FailDrop, After: 4}, "api_error"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
			first := e.account(t, "up-first", func(a *store.Account) { a.Priority = 10 })
			e.account(t, "up-second", func(a *store.Account) { a.Priority = 20 })
			fail := c.fail
			if err := e.Mock.SetScript("up-first", mockupstream.Script{Events: 10, Fail: &fail}); err != nil {
				t.Fatal(err)
			}
			resp := e.post(t, "/v1/messages", streamBody, nil)
			got := readBody(t, resp)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if n := bytes.Count(got, []byte("event: message_start")); n != 1 {
				t.Errorf("%d message_start events: a second response was appended", n)
			}
			if n := bytes.Count(got, []byte("event: error")); n != 1 {
				t.Fatalf("%d error events, want exactly 1:\n%s", n, got)
			}
			if !bytes.HasSuffix(got, []byte("}\n\n")) || !bytes.Contains(got[bytes.LastIndex(got, []byte("event: error")):], []byte(c.errorType)) {
				t.Errorf("the stream does not end with the %s event:\n%s", c.errorType, got)
			}
			sent := e.tap.Exchanges()[0].Body()
			if c.name == "ErrorEvent" && !bytes.Equal(got, sent) {
				t.Errorf("the upstream's own error event should be relayed as is:\n got %q\nwant %q", got, sent)
			}
			if c.name == "ConnectionDrop" && !bytes.HasPrefix(got, sent) {
				t.Errorf("the events before the drop were not relayed as sent")
			}
			if n := e.Mock.Stats("up-second").Requests; n != 0 {
				t.Errorf("failed over after the first byte (%d requests to the second account)", n)
			}
			rows := usageRows(t, e.Store, e.tenant.User.ID, 1)
			if !rows[0].Partial || rows[0].InputTokens == 0 {
				t.Errorf("row %+v: want partial with the input from message_start", rows[0])
			}
			a := getAccount(t, e.Store, first.ID)
			if c.name == "ErrorEvent" && a.OverloadedUntil == nil {
				t.Errorf("an overloaded_error event did not mark the account")
			}
		})
	}
}

// TestFirstEventErrorFailsOver: a stream whose very first event is an overloaded error has
// sent the client nothing, so another account may serve it.
func TestFirstEventErrorFailsOver(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-first", func(a *store.Account) { a.Priority = 10 })
	e.account(t, "up-second", func(a *store.Account) { a.Priority = 20 })
	if err := e.Mock.SetScript("up-first", mockupstream.Script{Fail: &mockupstream.Failure{Kind: mockupstream.FailError, After: 0}, FailTimes: 1}); err != nil {
		t.Fatal(err)
	}
	resp := e.post(t, "/v1/messages", streamBody, nil)
	got := readBody(t, resp)
	ex := e.tap.Exchanges()
	if resp.StatusCode != 200 || len(ex) != 2 || !bytes.Equal(got, ex[1].Body()) {
		t.Fatalf("status %d after %d attempts; want the second account's stream", resp.StatusCode, len(ex))
	}
}

// TestClientLeavesMidStream: the upstream answer is read to its end and billed in full,
// flagged partial; the account is not marked.
func TestClientLeavesMidStream(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	acct := e.account(t, "up-slow", nil)
	if err := e.Mock.SetScript("up-slow", mockupstream.Script{Events: 30, Interval: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.node.URL+"/v1/messages", strings.NewReader(streamBody))
	req.Header.Set("X-Api-Key", e.tenant.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	cancel() // leave after the first bytes
	resp.Body.Close()

	rows := usageRows(t, e.Store, e.tenant.User.ID, 1)
	log := e.Mock.Log("up-slow", 1)
	if !log[0].Completed {
		t.Fatalf("the upstream answer was not read to its end: %+v", log[0])
	}
	if !rows[0].Partial || rowUsage(rows[0]) != mockUsage(log[0].Usage) {
		t.Errorf("row %+v; want partial with the full usage %+v", rows[0], log[0].Usage)
	}
	if a := getAccount(t, e.Store, acct.ID); !a.Available(time.Now()) {
		t.Errorf("a client leaving marked the account")
	}
}

// uniqueBody is a JSON request of its own conversation (no shared sticky session).
func uniqueBody(tag string) string {
	return `{"model":"claude-sonnet-5-5","max_tokens":100,"messages":[{"role":"user","content":"` + tag + `"}]}`
}
