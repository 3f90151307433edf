package gateway_test

import (
	"bufio"
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
	"github.com/fluxcode/fluxcode/internal/store"
)

// testConfig keeps tests quick: charged balances are announced fast.
func testConfig() gateway.Config {
	cfg := gateway.Default()
	cfg.BillNotifyInterval = 10 * time.Millisecond
	return cfg
}

type env struct {
	*gatewaytest.Deps
	node   *gatewaytest.Node
	tenant *gatewaytest.Tenant
	tap    *gatewaytest.Tap
	clock  *gatewaytest.Clock
}

// newEnv starts one node with one tenant; accounts reach the mock through a tap.
func newEnv(t *testing.T, cfg gateway.Config, o gatewaytest.TenantOptions) *env {
	t.Helper()
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{})
	e := &env{Deps: d, tap: gatewaytest.NewTap(t, d.Mock), clock: &gatewaytest.Clock{}}
	e.node = gatewaytest.Start(t, d, cfg, "n1", e.clock.Now)
	e.tenant = gatewaytest.NewTenant(t, d, o)
	return e
}

func (e *env) account(t *testing.T, upstreamKey string, mutate func(*store.Account)) *store.Account {
	t.Helper()
	return gatewaytest.NewAccount(t, e.Deps, upstreamKey, []int64{e.tenant.Group.ID}, func(a *store.Account) {
		a.BaseURL = e.tap.URL
		if mutate != nil {
			mutate(a)
		}
	})
}

func (e *env) post(t *testing.T, path, body string, h http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.node.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	req.Header.Set("X-Api-Key", e.tenant.Secret)
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readBody(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// usageRows waits until the ledger holds want rows of the tenant (billing is batched) and
// returns them.
func usageRows(t *testing.T, st store.Store, userID int64, want int) []store.Usage {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rows, n, err := st.ListUsage(context.Background(), store.UsageFilter{UserID: userID}, store.Page{Limit: 200})
		if err != nil {
			// Right after a database restart the store may need a moment to reconnect.
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if n >= want || time.Now().After(deadline) {
			if n != want {
				t.Fatalf("ledger has %d rows for user %d, want %d", n, userID, want)
			}
			return rows
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mockUsage(u mockupstream.Usage) provider.Usage {
	return provider.Usage{Input: u.Input, Output: u.Output, CacheCreation5m: u.Cache5m, CacheCreation1h: u.Cache1h, CacheRead: u.CacheRead}
}

func rowUsage(r store.Usage) provider.Usage {
	return provider.Usage{Input: r.InputTokens, Output: r.OutputTokens, CacheCreation5m: r.CacheCreation5mTokens,
		CacheCreation1h: r.CacheCreation1hTokens, CacheRead: r.CacheReadTokens}
}

const jsonBody = `{"model":"claude-sonnet-5-5","max_tokens":300,"messages":[{"role":"user","content":"hello there"}]}`
const streamBody = `{"model":"claude-sonnet-5-5","max_tokens":300,"stream":true,"messages":[{"role":"user","content":"stream please"}]}`

func TestJSONRelayedAndBilled(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{MultiplierPPM: 1_500_000})
	acct := e.account(t, "up-json", nil)
	before := gatewaytest.Balance(t, e.Store, e.tenant.User.ID)

	resp := e.post(t, "/v1/messages?beta=true", jsonBody, http.Header{"Authorization": {"Bearer should-not-leak"}})
	got := readBody(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, got)
	}
	ex := e.tap.Exchanges()
	if len(ex) != 1 {
		t.Fatalf("%d upstream exchanges, want 1", len(ex))
	}
	if !bytes.Equal(got, ex[0].Body()) {
		t.Errorf("client body differs from the upstream's:\n got %s\nwant %s", got, ex[0].Body())
	}
	if resp.Header.Get("Request-Id") == "" || resp.Header.Get(gateway.HeaderRequestID) == "" {
		t.Errorf("missing request ids: %v", resp.Header)
	}

	recorded := e.Mock.Requests("up-json", 1)
	if len(recorded) != 1 {
		t.Fatalf("mock recorded %d requests", len(recorded))
	}
	rr := recorded[0]
	if string(rr.Body) != jsonBody {
		t.Errorf("upstream body %s, want the client's bytes %s", rr.Body, jsonBody)
	}
	if rr.RawQuery != "beta=true" {
		t.Errorf("upstream query %q", rr.RawQuery)
	}
	if a := rr.Header.Get("Authorization"); a != "" {
		t.Errorf("client credentials forwarded: Authorization %q", a)
	}

	rows := usageRows(t, e.Store, e.tenant.User.ID, 1)
	row := rows[0]
	log := gatewaytest.MockLog(t, e.Mock, "up-json", 1)
	if rowUsage(row) != mockUsage(log[0].Usage) {
		t.Errorf("billed %+v, mock reported %+v", rowUsage(row), log[0].Usage)
	}
	if row.RequestID != resp.Header.Get(gateway.HeaderRequestID) || row.AccountID != acct.ID || row.Partial || row.Stream {
		t.Errorf("row %+v", row)
	}
	if row.Cost <= 0 || row.Charged != row.Cost*3/2 {
		t.Errorf("cost %d charged %d, want charged = 1.5 × cost", row.Cost, row.Charged)
	}
	if after := gatewaytest.Balance(t, e.Store, e.tenant.User.ID); before-after != row.Charged {
		t.Errorf("balance fell by %d, charged %d", before-after, row.Charged)
	}
}

func TestStreamRelayedEventForEvent(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-stream", nil)
	if err := e.Mock.SetScript("up-stream", mockupstream.Script{Events: 12}); err != nil {
		t.Fatal(err)
	}
	resp := e.post(t, "/v1/messages", streamBody, nil)
	got := readBody(t, resp)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), got)
	}
	sent := e.tap.Exchanges()[0].Body()
	if !bytes.Equal(got, sent) {
		t.Fatalf("stream differs from the upstream's:\n got %q\nwant %q", got, sent)
	}
	if n := bytes.Count(got, []byte("event: ")); n != 12+6 {
		t.Errorf("%d events, want 18", n)
	}
	rows := usageRows(t, e.Store, e.tenant.User.ID, 1)
	if log := gatewaytest.MockLog(t, e.Mock, "up-stream", 1); rowUsage(rows[0]) != mockUsage(log[0].Usage) || !rows[0].Stream || rows[0].Partial {
		t.Errorf("row %+v, mock reported %+v", rows[0], log[0].Usage)
	}
}

func TestClientErrorsPassThrough(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	acct := e.account(t, "up-400", nil)
	e.account(t, "up-other", func(a *store.Account) { a.Priority = 90 })
	if err := e.Mock.SetScript("up-400", mockupstream.Script{Fail: &mockupstream.Failure{Status: 400, Message: "messages: field required"}}); err != nil {
		t.Fatal(err)
	}
	resp := e.post(t, "/v1/messages", jsonBody, nil)
	got := readBody(t, resp)
	if resp.StatusCode != 400 || !bytes.Equal(got, e.tap.Exchanges()[0].Body()) {
		t.Fatalf("status %d body %s, want the upstream's 400 unchanged", resp.StatusCode, got)
	}
	if n := e.Mock.Stats("up-other").Requests; n != 0 {
		t.Errorf("a 400 failed over: the other account got %d requests", n)
	}
	a, err := e.Store.GetAccount(context.Background(), acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Available(time.Now()) {
		t.Errorf("a 400 marked the account: %+v", a)
	}
}

func TestGatewayErrors(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBodyBytes = 1 << 10
	e := newEnv(t, cfg, gatewaytest.TenantOptions{})
	e.account(t, "up-e", nil)
	cases := []struct {
		name    string
		h       http.Header
		body    string
		status  int
		errType string
	}{
		{"NoKey", http.Header{"X-Api-Key": {""}}, jsonBody, 401, "authentication_error"},
		{"BadKey", http.Header{"X-Api-Key": {"fk-nope"}}, jsonBody, 401, "authentication_error"},
		{"BadJSON", nil, `{"model":`, 400, "invalid_request_error"},
		{"NoModel", nil, `{"max_tokens":5}`, 400, "invalid_request_error"},
		{"TooLarge", nil, `{"model":"m","pad":"` + strings.Repeat("x", 2<<10) + `"}`, 413, "request_too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := e.post(t, "/v1/messages", c.body, c.h)
			var body struct {
				Type  string `json:"type"`
				Error struct {
					Type    string `json:"type"`
					Message string `json:"message"`
				} `json:"error"`
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal(readBody(t, resp), &body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.status || body.Type != "error" || body.Error.Type != c.errType || body.Error.Message == "" || body.RequestID == "" {
				t.Fatalf("got %d %+v, want %d %s", resp.StatusCode, body, c.status, c.errType)
			}
		})
	}
	if n := e.Mock.Stats("up-e").Requests; n != 0 {
		t.Errorf("refused requests reached the upstream %d times", n)
	}
}

// TestStreamEventsReachTheClientAsTheyArrive: events are flushed as they come, never held
// for the rest of the answer: the client reads the first events while the upstream, which
// paces its deltas, is still answering.
func TestStreamEventsReachTheClientAsTheyArrive(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{})
	e.account(t, "up-paced", nil)
	if err := e.Mock.SetScript("up-paced", mockupstream.Script{Events: 2, Interval: 400 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	resp := e.post(t, "/v1/messages", streamBody, nil)
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	var names []string
	for len(names) < 3 { // message_start, content_block_start, the first delta
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %v: %v", names, err)
		}
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "event: "); ok {
			names = append(names, name)
		}
	}
	if n := e.Mock.Stats("up-paced").InFlight; n != 1 {
		t.Fatalf("the client had %v only once the upstream was done (in flight %d): the events were held back", names, n)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
}
