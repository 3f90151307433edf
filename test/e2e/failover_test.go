package e2e

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/store"
)

// TestFailoverPerClass is must-show 2: the preferred account fails once in each class; the
// SDK's request is served by the other account; the failed account carries the state the
// failure calls for; and that state ends when its time has passed (the nodes' clock is
// moved forward, nothing sleeps).
func TestFailoverPerClass(t *testing.T) {
	cfg := config()
	cfg.OverloadCooldown = 7 * time.Minute
	cfg.RateLimitCooldown = 90 * time.Second
	type check func(t *testing.T, a *store.Account, sent time.Time) (until time.Time)
	noMark := func(t *testing.T, a *store.Account, _ time.Time) time.Time {
		if !a.Available(time.Now()) || a.Status != store.StatusActive {
			t.Errorf("the account was marked: %+v", a)
		}
		return time.Time{}
	}
	errorState := func(status, text string) check {
		return func(t *testing.T, a *store.Account, _ time.Time) time.Time {
			if a.Status != store.StatusError || !strings.Contains(a.ErrorMessage, status) || !strings.Contains(a.ErrorMessage, text) {
				t.Errorf("status %q message %q; want the error state with the upstream's %s %q", a.Status, a.ErrorMessage, status, text)
			}
			return time.Time{} // an error state lasts until an admin clears it
		}
	}
	rateLimited := func(d time.Duration) check {
		return func(t *testing.T, a *store.Account, sent time.Time) time.Time {
			if !gatewaytest.Near(a.RateLimitedUntil, sent.Add(d), 3*time.Second) {
				t.Fatalf("rate limited until %v, want about %v", a.RateLimitedUntil, sent.Add(d))
			}
			return *a.RateLimitedUntil
		}
	}
	cases := []struct {
		name  string
		fail  mockupstream.Failure
		check check
	}{
		{"NetworkError", mockupstream.Failure{Kind: mockupstream.FailReset}, noMark},
		// One 401/403 is confirmed with a model-list call of the account's own: credentials
		// that still work leave no mark; a revoked key (refused again) is the error state.
		{"401Once", mockupstream.Failure{Status: 401, Message: "invalid x-api-key"}, noMark},
		{"403Once", mockupstream.Failure{Status: 403, Message: "organization disabled"}, noMark},
		{"401Revoked", mockupstream.Failure{}, errorState("401", "invalid x-api-key")},
		// 429s: the unified reset of subscription accounts, the API-key buckets' resets,
		// retry-after alone, and nothing at all (the default cooldown).
		{"429UnifiedReset", mockupstream.Failure{Status: 429, RetryAfter: 2 * time.Hour, RateLimit: mockupstream.RateLimitUnified, NoRetryAfter: true}, rateLimited(2 * time.Hour)},
		{"429RateLimitResets", mockupstream.Failure{Status: 429, RetryAfter: 40 * time.Minute, RateLimit: mockupstream.RateLimitAPI, NoRetryAfter: true}, rateLimited(40 * time.Minute)},
		{"429RetryAfter", mockupstream.Failure{Status: 429, RetryAfter: 25 * time.Minute, RateLimit: mockupstream.RateLimitNone}, rateLimited(25 * time.Minute)},
		{"429NoReset", mockupstream.Failure{Status: 429, RateLimit: mockupstream.RateLimitNone, NoRetryAfter: true}, rateLimited(90 * time.Second)},
		{"529", mockupstream.Failure{Status: 529}, func(t *testing.T, a *store.Account, sent time.Time) time.Time {
			if !gatewaytest.Near(a.OverloadedUntil, sent.Add(7*time.Minute), 3*time.Second) {
				t.Fatalf("overloaded until %v, want about %v", a.OverloadedUntil, sent.Add(7*time.Minute))
			}
			return *a.OverloadedUntil
		}},
		{"500", mockupstream.Failure{Status: 500}, noMark},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := single(t, cfg)
			ten := c.tenant(t, gatewaytest.TenantOptions{})
			first := c.account(t, "up-first", []int64{ten.Group.ID}, func(a *store.Account) { a.Priority = 10 })
			c.account(t, "up-second", []int64{ten.Group.ID}, func(a *store.Account) { a.Priority = 20 })
			fail := tc.fail
			script := mockupstream.Script{Fail: &fail, FailTimes: 1}
			if tc.fail == (mockupstream.Failure{}) {
				script = mockupstream.Script{Revoked: true}
			}
			if err := c.Mock.SetScript("up-first", script); err != nil {
				t.Fatal(err)
			}
			var got []byte
			client := sdk(c.nodes[0], ten.Secret, option.WithMiddleware(recordBody(&got)))
			sent := time.Now()
			msg, err := client.Messages.New(context.Background(), params("the failing one"))
			if err != nil {
				t.Fatalf("the SDK saw an error: %v", err)
			}
			var ex []*gatewaytest.Exchange // the model requests, without a confirming call
			for _, e := range c.tap.Exchanges() {
				if e.Path == "/v1/messages" {
					ex = append(ex, e)
				}
			}
			if len(ex) != 2 || ex[0].UpstreamK != "up-first" || ex[1].UpstreamK != "up-second" || !bytes.Equal(got, ex[1].Body()) {
				t.Fatalf("%d attempts; want the first account tried, then the second's answer relayed", len(ex))
			}
			if ex[0].Status != 0 && ex[0].Status == 200 || msg.ID == "" {
				t.Fatalf("the first attempt did not fail: %d", ex[0].Status)
			}

			until := tc.check(t, gatewaytest.Account(t, c.Store, first.ID), sent)
			if until.IsZero() {
				return
			}
			// Until the mark ends the account is skipped; after it, it serves again. Each
			// request is a new conversation so that stickiness plays no part.
			c.clock.Advance(time.Until(until) - time.Minute)
			if _, err := client.Messages.New(context.Background(), params("before the end")); err != nil {
				t.Fatal(err)
			}
			if n := c.Mock.Stats("up-first").Requests; n != 1 {
				t.Fatalf("the marked account was used before its mark ended")
			}
			c.clock.Advance(2 * time.Minute)
			if _, err := client.Messages.New(context.Background(), params("after the end")); err != nil {
				t.Fatal(err)
			}
			if n := c.Mock.Stats("up-first").Requests; n != 2 {
				t.Fatalf("the account did not serve again after its mark ended (requests %d)", n)
			}
		})
	}
}

// TestMidStreamError is the rest of must-show 2: an upstream failure after the first byte
// reaches the SDK as exactly one error event; the stream ends there; no second response
// follows; no other account is tried; what was consumed is billed as partial.
func TestMidStreamError(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fail      mockupstream.Failure
		errorType string
	}{
		{"UpstreamErrorEvent", mockupstream.Failure{Kind: mockupstream.FailError, After: 5, ErrorType: "overloaded_error"}, "overloaded_error"},
		{"UpstreamConnectionDrop", mockupstream.Failure{Kind: mockupstream.FailDrop, After: 5}, "api_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := single(t, config())
			ten := c.tenant(t, gatewaytest.TenantOptions{})
			first := c.account(t, "up-first", []int64{ten.Group.ID}, func(a *store.Account) { a.Priority = 10 })
			c.account(t, "up-second", []int64{ten.Group.ID}, func(a *store.Account) { a.Priority = 20 })
			fail := tc.fail
			if err := c.Mock.SetScript("up-first", mockupstream.Script{Events: 10, Fail: &fail}); err != nil {
				t.Fatal(err)
			}
			var got []byte
			client := sdk(c.nodes[0], ten.Secret, option.WithMiddleware(recordBody(&got)))
			stream := client.Messages.NewStreaming(context.Background(), params("cut short"))
			events := 0
			for stream.Next() {
				events++
			}
			var apiErr *anthropic.Error
			if err := stream.Err(); !errors.As(err, &apiErr) || !strings.Contains(apiErr.Error(), tc.errorType) {
				t.Fatalf("stream error %v; want the %s error event", err, tc.errorType)
			}
			stream.Close()
			if events == 0 {
				t.Fatal("no event reached the client before the failure")
			}
			if n := bytes.Count(got, []byte("event: error")); n != 1 {
				t.Fatalf("%d error events, want exactly 1:\n%s", n, got)
			}
			if n := bytes.Count(got, []byte("event: message_start")); n != 1 {
				t.Fatalf("%d message_start events: a second response was appended", n)
			}
			if !bytes.HasSuffix(got, []byte("}\n\n")) || bytes.LastIndex(got, []byte("event: ")) != bytes.LastIndex(got, []byte("event: error")) {
				t.Fatalf("the stream does not end with the error event:\n%s", got)
			}
			sent := c.tap.Exchanges()[0].Body()
			if tc.name == "UpstreamErrorEvent" && !bytes.Equal(got, sent) {
				t.Errorf("the upstream's own error event is not relayed as sent:\n got %q\nwant %q", got, sent)
			}
			if tc.name == "UpstreamConnectionDrop" && !bytes.HasPrefix(got, sent) {
				t.Errorf("the events before the drop are not relayed as sent")
			}
			if n := c.Mock.Stats("up-second").Requests; n != 0 {
				t.Errorf("failed over after the first byte: the second account got %d requests", n)
			}
			r := rows(t, c.Store, store.UsageFilter{UserID: ten.User.ID}, 1)[0]
			if !r.Partial || r.InputTokens != gatewaytest.MockLog(t, c.Mock, "up-first", 1)[0].Usage.Input || r.Cost <= 0 {
				t.Errorf("row %+v; want partial, billed for the input message_start reported", r)
			}
			if tc.name == "UpstreamErrorEvent" && gatewaytest.Account(t, c.Store, first.ID).OverloadedUntil == nil {
				t.Errorf("an overloaded_error event left no mark on the account")
			}
		})
	}
}
