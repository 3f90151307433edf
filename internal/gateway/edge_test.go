package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/store"
)

// rawPost opens a connection to the node and sends a POST's head and the first part of its
// body, declaring length bytes; the rest is the test's to send (or not).
func rawPost(t *testing.T, nodeURL, path, apiKey string, length int, first string) net.Conn {
	t.Helper()
	u, err := url.Parse(nodeURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nX-Api-Key: %s\r\nAnthropic-Version: 2023-06-01\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, u.Host, apiKey, length)
	if _, err := io.WriteString(conn, head+first); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readAnswer reads one response from conn, failing the test if none comes within 15s
// (the old code waited for a body that never came).
func readAnswer(t *testing.T, conn net.Conn) (*http.Response, anthropicError) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer before the body was sent: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e anthropicError
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, b)
	}
	return resp, e
}

type anthropicError struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// TestOverLimitContentLengthRefusedBeforeTheBody: a declared Content-Length over
// MaxBodyBytes gets a 413 in Anthropic's error shape at once, with no body byte sent (the old
// gateway read up to the limit first, so this answer never came).
func TestOverLimitContentLengthRefusedBeforeTheBody(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBodyBytes = 1 << 20
	e := newEnv(t, cfg, gatewaytest.TenantOptions{})
	e.account(t, "up-cl", nil)
	for _, key := range []string{e.tenant.Secret, "fk-unknown"} {
		conn := rawPost(t, e.node.URL, "/v1/messages", key, 95<<20, "")
		resp, body := readAnswer(t, conn)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || body.Type != "error" || body.Error.Type != "request_too_large" {
			t.Errorf("over-limit Content-Length: %d %+v, want 413 request_too_large", resp.StatusCode, body)
		}
	}
	if n := e.Mock.Stats("up-cl").Requests; n != 0 {
		t.Errorf("refused requests reached the upstream %d times", n)
	}
}

// TestNoBalanceRefusedBeforeTheBody: a key whose user has no balance is refused (402) on
// its headers, without the gateway waiting for (or reading) the body — the attack of six
// 95 MiB posts from a user with no money.
func TestNoBalanceRefusedBeforeTheBody(t *testing.T) {
	e := newEnv(t, testConfig(), gatewaytest.TenantOptions{Balance: -1})
	e.account(t, "up-nobal", nil)
	conn := rawPost(t, e.node.URL, "/v1/messages", e.tenant.Secret, 20<<20, `{"model":`)
	resp, body := readAnswer(t, conn)
	if resp.StatusCode != http.StatusPaymentRequired || body.Error.Type != "billing_error" || resp.Header.Get(gateway.HeaderReject) != gateway.RejectBalance {
		t.Fatalf("no balance: %d %+v reject=%q, want 402 billing_error", resp.StatusCode, body, resp.Header.Get(gateway.HeaderReject))
	}
}

// TestBodyBytesInFlightBounded: while one request holds most of the node's body budget,
// another whose body would pass it is refused with a retryable 503 before its body is read;
// once the first ends, the same request is served.
func TestBodyBytesInFlightBounded(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBodyBytes = 64 << 10
	cfg.BodyBytesInFlight = 100 << 10
	e := newEnv(t, cfg, gatewaytest.TenantOptions{})
	e.account(t, "up-budget", nil)

	const size = 60 << 10
	body := `{"model":"claude-sonnet-5-5","max_tokens":5,"messages":[{"role":"user","content":"` +
		strings.Repeat("x", size-200) + `"}]}`
	body += strings.Repeat(" ", size-len(body))

	holder := rawPost(t, e.node.URL, "/v1/messages", e.tenant.Secret, size, body[:1000]) // holds its 60 KiB

	// The holder's bytes are reserved once its headers are read and it is admitted.
	deadline := time.Now().Add(10 * time.Second)
	for e.node.Metric(t, "fluxcode_gateway_body_bytes_in_flight", nil) < size {
		if time.Now().After(deadline) {
			t.Fatal("the holder's body bytes are not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	second := rawPost(t, e.node.URL, "/v1/messages", e.tenant.Secret, size, body)
	resp, eb := readAnswer(t, second)
	if resp.StatusCode != http.StatusServiceUnavailable || eb.Error.Type != "overloaded_error" ||
		resp.Header.Get(gateway.HeaderReject) != gateway.RejectBodyBudget ||
		resp.Header.Get("X-Should-Retry") != "true" || !strings.Contains(eb.Error.Message, "request bodies") {
		t.Fatalf("a body over the node's budget: %d %+v headers %v, want a retryable 503", resp.StatusCode, eb, resp.Header)
	}

	// The holder finishes its body and is served; then there is room again.
	if _, err := io.WriteString(holder, body[1000:]); err != nil {
		t.Fatal(err)
	}
	if resp, eb := readAnswer(t, holder); resp.StatusCode != 200 {
		t.Fatalf("holder: %d %+v", resp.StatusCode, eb)
	}
	resp = e.post(t, "/v1/messages", body, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("after the holder ended: %d %s", resp.StatusCode, readBody(t, resp))
	}
}

// TestChunkedBodyBytesInFlightBounded: a body without a declared length is counted as it
// arrives, and refused when it passes the budget.
func TestChunkedBodyBytesInFlightBounded(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBodyBytes = 64 << 10
	cfg.BodyBytesInFlight = 64 << 10
	e := newEnv(t, cfg, gatewaytest.TenantOptions{})
	e.account(t, "up-chunked", nil)
	holder := rawPost(t, e.node.URL, "/v1/messages", e.tenant.Secret, 40<<10, "{")
	defer holder.Close()
	deadline := time.Now().Add(10 * time.Second)
	for e.node.Metric(t, "fluxcode_gateway_body_bytes_in_flight", nil) < 40<<10 {
		if time.Now().After(deadline) {
			t.Fatal("the holder's body bytes are not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}

	pr, pw := io.Pipe()
	go func() {
		chunk := strings.Repeat(" ", 4<<10)
		for { // until the test ends: past what the holder left, and past MaxBodyBytes
			if _, err := io.WriteString(pw, chunk); err != nil {
				return
			}
		}
	}()
	defer pr.Close()
	req, _ := http.NewRequest(http.MethodPost, e.node.URL+"/v1/messages", pr)
	req.Header.Set("X-Api-Key", e.tenant.Secret)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("chunked request: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(gateway.HeaderReject) != gateway.RejectBodyBudget {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("chunked body past the budget: %d %s", resp.StatusCode, b)
	}
}

// acceptCounter listens on loopback and counts connections: the address an SSRF would hit.
func acceptCounter(t *testing.T) (port int, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted = &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, accepted
}

// TestUpstreamGuardRefusesLoopback: with the default configuration (no allowed networks),
// an account whose base URL points at this machine — by address, IPv4-mapped IPv6 or a name
// resolving to 127.0.0.1 — or a proxy on it is refused at dial time: the listener there
// never sees a connection, and the client gets a 502. The numeric notations (0x7f000001,
// 2130706433) and the private and metadata ranges are shown in internal/netguard, behind a
// tripwire, so no test packet can leave loopback.
func TestUpstreamGuardRefusesLoopback(t *testing.T) {
	cfg := testConfig()
	cfg.AllowedNetworks = []netip.Prefix{} // the default: refuse
	cfg.MaxAccountSwitches = 0
	e := newEnv(t, cfg, gatewaytest.TenantOptions{})
	port, accepted := acceptCounter(t)
	p := strconv.Itoa(port)

	proxy := &store.Proxy{Name: "local", Protocol: "http", Host: "127.0.0.1", Port: port, Status: store.StatusActive}
	if err := e.Store.CreateProxy(context.Background(), proxy); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*store.Account){
		"address":     func(a *store.Account) { a.BaseURL = "http://127.0.0.1:" + p },
		"mapped":      func(a *store.Account) { a.BaseURL = "http://[::ffff:127.0.0.1]:" + p },
		"name":        func(a *store.Account) { a.BaseURL = "http://localhost:" + p },
		"via proxy":   func(a *store.Account) { a.BaseURL = "http://api.example.test"; a.ProxyID = &proxy.ID },
		"proxy local": func(a *store.Account) { a.BaseURL = "http://localhost:" + p; a.ProxyID = &proxy.ID },
	}
	for name, set := range cases {
		t.Run(name, func(t *testing.T) {
			tenant := gatewaytest.NewTenant(t, e.Deps, gatewaytest.TenantOptions{}) // a group of its own
			acct := gatewaytest.NewAccount(t, e.Deps, "up-ssrf", []int64{tenant.Group.ID}, set)
			resp := e.post(t, "/v1/messages", jsonBody, http.Header{"X-Api-Key": {tenant.Secret}})
			b := readBody(t, resp)
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("account %d (%s): %d %s, want 502", acct.ID, acct.BaseURL, resp.StatusCode, b)
			}
		})
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("the guarded address accepted %d connections", n)
	}
}

// TestUpstreamGuardAllowlistedLoopback: the allowlist lets an operator (and the tests) use an
// upstream on loopback.
func TestUpstreamGuardAllowlistedLoopback(t *testing.T) {
	cfg := testConfig()
	cfg.AllowedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	e := newEnv(t, cfg, gatewaytest.TenantOptions{})
	e.account(t, "up-allowed", nil)
	if resp := e.post(t, "/v1/messages", jsonBody, nil); resp.StatusCode != 200 {
		t.Fatalf("allowlisted loopback upstream: %d %s", resp.StatusCode, readBody(t, resp))
	}
}
