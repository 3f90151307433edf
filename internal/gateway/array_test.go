package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	"github.com/fluxcode/fluxcode/internal/provider/gemini"
	"github.com/fluxcode/fluxcode/internal/store"
)

// newArrayEnv is one node with a Gemini group of one account; post sends an array stream
// request whose upstream answer fails as f says (8 chunks reporting usage).
func newArrayEnv(t *testing.T, cfg gateway.Config) (*gatewaytest.Deps, *gatewaytest.Tenant, *store.Account,
	func(t *testing.T, f mockupstream.Failure) (*http.Response, []byte, error)) {
	t.Helper()
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{Providers: []provider.Provider{anthropic.New(), gemini.New()}})
	node := gatewaytest.Start(t, d, cfg, "n1", nil)
	g := &store.Group{Name: "gemini-group", Platform: store.PlatformGemini, BillingType: store.BillingBalance,
		RateMultiplierPPM: 1_000_000, Status: store.StatusActive}
	if err := d.Store.CreateGroup(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	ten := gatewaytest.NewTenant(t, d, gatewaytest.TenantOptions{Group: g})
	acct := gatewaytest.NewAccount(t, d, "gm-array", []int64{g.ID}, func(a *store.Account) { a.Platform = store.PlatformGemini })
	usage := mockupstream.Usage{Input: 120, Output: 40}
	post := func(t *testing.T, f mockupstream.Failure) (*http.Response, []byte, error) {
		t.Helper()
		err := d.Mock.SetScript("gm-array", mockupstream.Script{Events: 8, Usage: &usage, Fail: &f})
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest("POST", node.URL+"/v1beta/models/gemini-3.8-flash:streamGenerateContent",
			strings.NewReader(`{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Goog-Api-Key", ten.Secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	return d, ten, acct, post
}

// TestArrayStreamErrorElementMarksAccount: the upstream's own error element in an array
// stream marks the account as the same error would in a stream's error event or a JSON
// answer (RESOURCE_EXHAUSTED: rate-limited for the cooldown; UNAVAILABLE: overloaded),
// while the client still gets the array as it came.
func TestArrayStreamErrorElementMarksAccount(t *testing.T) {
	for _, c := range []struct {
		word   string
		marked func(a *store.Account) *time.Time
		after  time.Duration
	}{
		{"RESOURCE_EXHAUSTED", func(a *store.Account) *time.Time { return a.RateLimitedUntil }, testConfig().RateLimitCooldown},
		{"UNAVAILABLE", func(a *store.Account) *time.Time { return a.OverloadedUntil }, testConfig().OverloadCooldown},
	} {
		t.Run(c.word, func(t *testing.T) {
			d, _, acct, post := newArrayEnv(t, testConfig())
			resp, got, err := post(t, mockupstream.Failure{Kind: mockupstream.FailError, ErrorType: c.word, After: 3})
			var elems []json.RawMessage
			if err != nil || resp.StatusCode != 200 || json.Unmarshal(got, &elems) != nil || len(elems) != 4 ||
				!bytes.Contains(elems[3], []byte(`"status":"`+c.word+`"`)) || bytes.Count(got, []byte(`"error"`)) != 1 {
				t.Fatalf("status %d, read error %v; want the upstream's array as it came:\n%s", resp.StatusCode, err, got)
			}
			until := c.marked(gatewaytest.Account(t, d.Store, acct.ID))
			if !gatewaytest.Near(until, time.Now().Add(c.after), 10*time.Second) {
				t.Fatalf("account marked until %v, want about %v from now", until, c.after)
			}
		})
	}
}

// TestArrayStreamBrokeOff: Gemini's streamGenerateContent without alt=sse is one JSON array
// sent element by element. An upstream that breaks off between two elements leaves the
// client a valid array that ends in exactly one error element in Google's shape (504
// DEADLINE_EXCEEDED when it went silent past the idle timeout); one that
// breaks off inside an element cannot be completed, and the connection is cut; the
// upstream's own error element is relayed as it came. Each time what was metered is billed
// once, as partial.
func TestArrayStreamBrokeOff(t *testing.T) {
	cfg := testConfig()
	cfg.IdleTimeout = 300 * time.Millisecond // a stalled upstream is given up soon
	d, ten, _, post := newArrayEnv(t, cfg)
	usage := mockupstream.Usage{Input: 120, Output: 40}
	// row waits for the ledger's n-th row and checks it is the partial one of resp, billed
	// with the prompt the chunks so far reported (the mock reports the output last).
	row := func(t *testing.T, resp *http.Response, n int) {
		t.Helper()
		rows := usageRows(t, d.Store, ten.User.ID, n)
		var mine []store.Usage
		for _, r := range rows {
			if r.RequestID == resp.Header.Get(gateway.HeaderRequestID) {
				mine = append(mine, r)
			}
		}
		if len(rows) != n || len(mine) != 1 || !mine[0].Partial || mine[0].InputTokens != usage.Input || mine[0].OutputTokens != 0 {
			t.Fatalf("rows %+v; want one partial row of %d input tokens", rows, usage.Input)
		}
	}

	// errorEnded checks the client got a valid array of the 3 chunks relayed and one error
	// element of the gateway's.
	errorEnded := func(t *testing.T, f mockupstream.Failure, code int, status, message string) *http.Response {
		t.Helper()
		resp, got, err := post(t, f)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("status %d, read error %v:\n%s", resp.StatusCode, err, got)
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(got, &elems); err != nil || len(elems) != 4 {
			t.Fatalf("%d elements (%v); want the 3 chunks and one error:\n%s", len(elems), err, got)
		}
		var last struct {
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
				Status  string `json:"status"`
			} `json:"error"`
		}
		if err := json.Unmarshal(elems[3], &last); err != nil || last.Error.Code != code || last.Error.Status != status ||
			last.Error.Message != message || bytes.Count(got, []byte(`"error"`)) != 1 {
			t.Fatalf("last element %s; the client got:\n%s", elems[3], got)
		}
		for _, e := range elems[:3] {
			if !bytes.Contains(e, []byte(`"candidates"`)) {
				t.Fatalf("element %s is not a chunk", e)
			}
		}
		return resp
	}

	t.Run("between elements", func(t *testing.T) {
		resp := errorEnded(t, mockupstream.Failure{Kind: mockupstream.FailDrop, After: 3}, 500, "INTERNAL", "the upstream stream broke off")
		row(t, resp, 1)
	})
	t.Run("mid-element", func(t *testing.T) {
		resp, got, err := post(t, mockupstream.Failure{Kind: mockupstream.FailDrop, After: 3, Torn: true})
		if err == nil || json.Valid(got) || bytes.Contains(got, []byte(`"error"`)) {
			t.Fatalf("read error %v; want the connection cut mid-element, got:\n%s", err, got)
		}
		row(t, resp, 2)
	})
	t.Run("the upstream goes silent", func(t *testing.T) {
		resp := errorEnded(t, mockupstream.Failure{Kind: mockupstream.FailStall, After: 3}, 504, "DEADLINE_EXCEEDED", "the upstream stream went silent")
		row(t, resp, 3)
	})
	// Last: the error element marks the account (TestArrayStreamErrorElementMarksAccount).
	t.Run("the upstream's own error element", func(t *testing.T) {
		resp, got, err := post(t, mockupstream.Failure{Kind: mockupstream.FailError, After: 3})
		var elems []json.RawMessage
		if err != nil || resp.StatusCode != 200 || json.Unmarshal(got, &elems) != nil || len(elems) != 4 ||
			!bytes.HasPrefix(elems[3], []byte(`{"error":{"code":503,`)) || bytes.Count(got, []byte(`"error"`)) != 1 {
			t.Fatalf("status %d, read error %v; want the upstream's array as it came:\n%s", resp.StatusCode, err, got)
		}
		row(t, resp, 4)
	})
}
