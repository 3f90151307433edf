package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/testenv"
)

// These tests run the real Caddy with deploy/Caddyfile.multihost, in mode B (a list of
// upstreams from FLUXCODE_UPSTREAMS), in front of small HTTP servers standing in for
// FluxCode nodes on distinct loopback addresses. Waits are bounded polls, never timing
// assertions.

// waitFor bounds every poll; a condition still false after it fails the test.
const waitFor = 30 * time.Second

// node stands in for one FluxCode node.
type node struct {
	name    string
	addr    string // ip:port
	srv     *http.Server
	healthy atomic.Bool
	served  atomic.Int64
	// step paces /sse: after each event the handler waits for the test to send on step,
	// which it does only once it has read that event through Caddy.
	step chan struct{}
}

// answer is what a node reports about a request it served.
type answer struct {
	Node       string `json:"node"`
	Peer       string `json:"peer"`
	XFF        string `json:"x_forwarded_for"`
	XFProto    string `json:"x_forwarded_proto"`
	XFHost     string `json:"x_forwarded_host"`
	BodyLength int    `json:"body_length"`
}

func startNode(t testing.TB, name, ip string) *node {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen on %s (Linux routes all of 127.0.0.0/8 to loopback): %v", ip, err)
	}
	n := &node{name: name, addr: ln.Addr().String(), step: make(chan struct{})}
	n.healthy.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, r *http.Request) {
		if !n.healthy.Load() {
			http.Error(w, `{"status":"unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n.served.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(answer{
			Node: n.name, Peer: r.RemoteAddr, BodyLength: len(body),
			XFF: r.Header.Get("X-Forwarded-For"), XFProto: r.Header.Get("X-Forwarded-Proto"),
			XFHost: r.Header.Get("X-Forwarded-Host"),
		})
	})
	mux.HandleFunc("/sse", func(w http.ResponseWriter, r *http.Request) {
		n.served.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		const events = 5
		for i := range events {
			fmt.Fprintf(w, "event: delta\ndata: {\"node\":%q,\"i\":%d}\n\n", n.name, i)
			if err := rc.Flush(); err != nil {
				return
			}
			if i == events-1 {
				return
			}
			select {
			case <-n.step:
			case <-r.Context().Done():
				return
			}
		}
	})
	n.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go n.srv.Serve(ln)
	t.Cleanup(func() { n.srv.Close() })
	return n
}

// threeNodes starts nodes a, b and c on 127.0.0.11, .12 and .13.
func threeNodes(t testing.TB) (a, b, c *node) {
	t.Helper()
	return startNode(t, "a", "127.0.0.11"), startNode(t, "b", "127.0.0.12"), startNode(t, "c", "127.0.0.13")
}

// kill stops the node at once: its port refuses connections from now on.
func (n *node) kill() { n.srv.Close() }

// proxy is a running Caddy with the deploy Caddyfile.
type proxy struct {
	caddy *testenv.Caddy
	url   string
}

// startProxy starts Caddy on a free loopback port in front of nodes (mode B).
func startProxy(t testing.TB, sticky string, nodes ...*node) *proxy {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	env := map[string]string{
		"CADDY_ADDR":            addr,
		"CADDY_ADDRESS":         "http://" + addr,
		"CADDY_BIND":            "127.0.0.1", // tests listen on loopback only
		"FLUXCODE_UPSTREAMS":    upstreamLine(nodes...),
		"CADDY_STICKY_COOKIE":   sticky,
		"CADDY_HEALTH_INTERVAL": "500ms",
	}
	c := testenv.StartCaddy(t, readDeployFile(t, caddyfileName), env)
	// Caddy listens on the site's loopback address only, not on every interface.
	resp, err := http.Get("http://" + c.AdminAddr() + "/config/apps/http/servers/srv0/listen")
	if err != nil {
		t.Fatalf("caddy admin: %v", err)
	}
	defer resp.Body.Close()
	var listen []string
	if err := json.NewDecoder(resp.Body).Decode(&listen); err != nil || len(listen) != 1 || listen[0] != addr {
		t.Fatalf("caddy listens on %v (%v), want only %s", listen, err, addr)
	}
	return &proxy{caddy: c, url: "http://" + addr}
}

func upstreamLine(nodes ...*node) string {
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.addr
	}
	return "to " + strings.Join(addrs, " ")
}

// reloadWithUpstreams changes only FLUXCODE_UPSTREAMS and reloads Caddy, as an operator
// does after editing .env.
func (p *proxy) reloadWithUpstreams(t testing.TB, nodes ...*node) {
	t.Helper()
	env := map[string]string{"FLUXCODE_UPSTREAMS": upstreamLine(nodes...)}
	if err := p.caddy.ReloadEnv(readDeployFile(t, caddyfileName), env); err != nil {
		t.Fatalf("caddy reload: %v\n%s", err, p.caddy.LogTail())
	}
}

// client talks to Caddy from the local address 127.0.0.7, so that the client's address
// differs from Caddy's own (127.0.0.1) in what the nodes see.
func client(jar http.CookieJar) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 7)}, Timeout: 5 * time.Second}
	return &http.Client{
		Jar:       jar,
		Timeout:   waitFor,
		Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
	}
}

// whoami sends one request through Caddy; the error carries the status of a failure.
func whoami(c *http.Client, p *proxy, method string, body string) (answer, *http.Response, error) {
	req, err := http.NewRequest(method, p.url+"/whoami", strings.NewReader(body))
	if err != nil {
		return answer{}, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	// A client cannot choose the address FluxCode sees: Caddy replaces this.
	req.Header.Set("X-Forwarded-For", "192.0.2.66")
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return answer{}, resp, fmt.Errorf("status %s: %s", resp.Status, b)
	}
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		return answer{}, resp, fmt.Errorf("decode %q: %w", b, err)
	}
	return a, resp, nil
}

func mustWhoami(t testing.TB, c *http.Client, p *proxy) answer {
	t.Helper()
	a, _, err := whoami(c, p, http.MethodGet, "")
	if err != nil {
		t.Fatalf("GET /whoami through Caddy: %v\n%s", err, p.caddy.LogTail())
	}
	return a
}

// spread sends n requests and counts them per node.
func spread(t testing.TB, c *http.Client, p *proxy, n int) map[string]int {
	t.Helper()
	count := map[string]int{}
	for range n {
		count[mustWhoami(t, c, p).Node]++
	}
	return count
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for: %s", waitFor, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// avoids reports whether the next k requests all succeed on nodes other than skip.
func avoids(t testing.TB, c *http.Client, p *proxy, skip string, k int) bool {
	t.Helper()
	for range k {
		a, _, err := whoami(c, p, http.MethodPost, `{"model":"m"}`)
		if err != nil || a.Node == skip {
			return false
		}
	}
	return true
}

func TestCaddySpreadsLoadAndPassesTheClientAddress(t *testing.T) {
	for _, sticky := range []string{"on", "off"} {
		t.Run("sticky "+sticky, func(t *testing.T) {
			t.Parallel()
			a, b, c := threeNodes(t)
			p := startProxy(t, sticky, a, b, c)

			// Clients without cookies (CLIs, SDKs) are spread over every node.
			count := spread(t, client(nil), p, 60)
			for _, n := range []*node{a, b, c} {
				if count[n.name] == 0 {
					t.Errorf("node %s got none of 60 requests: %v", n.name, count)
				}
			}

			got := mustWhoami(t, client(nil), p)
			u := strings.TrimPrefix(p.url, "http://")
			if got.XFF != "127.0.0.7" {
				t.Errorf("X-Forwarded-For = %q, want only the client's address 127.0.0.7", got.XFF)
			}
			if host, _, _ := net.SplitHostPort(got.Peer); host != "127.0.0.1" {
				t.Errorf("peer = %s, want Caddy on 127.0.0.1 (the address FluxCode's TRUSTED_PROXIES names)", got.Peer)
			}
			if got.XFProto != "http" || got.XFHost != u {
				t.Errorf("X-Forwarded-Proto = %q, X-Forwarded-Host = %q; want http and %s", got.XFProto, got.XFHost, u)
			}
		})
	}
}

func TestCaddyStickyCookieSwitch(t *testing.T) {
	for _, tc := range []struct {
		sticky    string
		cookie    bool
		nodesSeen func(int) bool
		what      string
		requests  int
	}{
		{sticky: "on", cookie: true, requests: 30, what: "a client that keeps the cookie stays on one node",
			nodesSeen: func(n int) bool { return n == 1 }},
		{sticky: "off", cookie: false, requests: 60, what: "no cookie: even a cookie-keeping client is spread",
			nodesSeen: func(n int) bool { return n == 3 }},
	} {
		t.Run("sticky "+tc.sticky, func(t *testing.T) {
			t.Parallel()
			a, b, c := threeNodes(t)
			p := startProxy(t, tc.sticky, a, b, c)
			jar, _ := cookiejar.New(nil)
			cl := client(jar)
			_, resp, err := whoami(cl, p, http.MethodGet, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := hasCookie(resp, "fluxcode_sticky"); got != tc.cookie {
				t.Fatalf("fluxcode_sticky cookie set = %v, want %v: %v", got, tc.cookie, resp.Header)
			}
			if count := spread(t, cl, p, tc.requests); !tc.nodesSeen(len(count)) {
				t.Errorf("%s: %d requests reached %v", tc.what, tc.requests, count)
			}
		})
	}
}

func hasCookie(resp *http.Response, name string) bool {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return true
		}
	}
	return false
}

// sseStream reads one SSE response event by event.
type sseStream struct {
	resp *http.Response
	rd   *bufio.Reader
}

func openSSE(t testing.TB, ctx context.Context, p *proxy) *sseStream {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/sse", strings.NewReader(`{"stream":true}`))
	resp, err := client(nil).Do(req)
	if err != nil {
		t.Fatalf("POST /sse through Caddy: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("POST /sse: %s, Content-Type %q", resp.Status, ct)
	}
	return &sseStream{resp: resp, rd: bufio.NewReader(resp.Body)}
}

type sseEvent struct {
	Node string `json:"node"`
	I    int    `json:"i"`
}

// next reads the next event's data line.
func (s *sseStream) next() (sseEvent, error) {
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			return sseEvent{}, err
		}
		if data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: "); ok {
			var ev sseEvent
			return ev, json.Unmarshal([]byte(data), &ev)
		}
	}
}

// readLockstep reads every event, letting the node write the next one only after this one
// arrived: a proxy that buffered would leave the client waiting for an event the node
// holds back, and the read would hit ctx's deadline.
func readLockstep(t testing.TB, s *sseStream, nodes map[string]*node) {
	t.Helper()
	for i := 0; ; i++ {
		ev, err := s.next()
		if errors.Is(err, io.EOF) && i == 5 {
			return
		}
		if err != nil {
			t.Fatalf("event %d: %v (a buffering proxy holds events until the stream ends)", i, err)
		}
		if ev.I != i {
			t.Fatalf("event %d arrived as %d", i, ev.I)
		}
		if i < 4 {
			select {
			case nodes[ev.Node].step <- struct{}{}:
			case <-time.After(waitFor):
				t.Fatalf("node %s did not wait for event %d to be read", ev.Node, i)
			}
		}
	}
}

func TestCaddyStreamsEventsOneByOne(t *testing.T) {
	a, b := startNode(t, "a", "127.0.0.11"), startNode(t, "b", "127.0.0.12")
	p := startProxy(t, "off", a, b)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	readLockstep(t, openSSE(t, ctx, p), map[string]*node{"a": a, "b": b})
}

func TestCaddyReloadAddsAFourthNode(t *testing.T) {
	a, b, c := threeNodes(t)
	d := startNode(t, "d", "127.0.0.14")
	p := startProxy(t, "on", a, b, c)

	if count := spread(t, client(nil), p, 30); count["d"] != 0 {
		t.Fatalf("node d got traffic before it was listed: %v", count)
	}
	// Only FLUXCODE_UPSTREAMS changes; the Caddyfile stays as it is.
	p.reloadWithUpstreams(t, a, b, c, d)
	eventually(t, "node d receives traffic after the reload", func() bool {
		mustWhoami(t, client(nil), p)
		return d.served.Load() > 0
	})
	if count := spread(t, client(nil), p, 60); len(count) != 4 {
		t.Errorf("after the reload 60 requests reached %v, want all four nodes", count)
	}
}

func TestCaddyTakesOutAnUnhealthyNode(t *testing.T) {
	a, b, c := threeNodes(t)
	p := startProxy(t, "off", a, b, c)
	cl := client(nil)
	if count := spread(t, cl, p, 60); count["b"] == 0 {
		t.Fatalf("node b got no traffic to begin with: %v", count)
	}

	// b's /health turns 503 (as FluxCode's does when it loses PostgreSQL or Redis).
	b.healthy.Store(false)
	eventually(t, "Caddy stops sending to the unhealthy node", func() bool { return avoids(t, cl, p, "b", 30) })
	if count := spread(t, cl, p, 60); count["b"] != 0 {
		t.Errorf("the unhealthy node still got %d of 60 requests", count["b"])
	}

	b.healthy.Store(true)
	eventually(t, "Caddy sends to the node again once it is healthy", func() bool {
		return spread(t, cl, p, 10)["b"] > 0
	})
}

func TestCaddySkipsADeadNodeWithoutBlamingTheOthers(t *testing.T) {
	a, b, c := threeNodes(t)
	p := startProxy(t, "off", a, b, c)
	cl := client(nil)
	spread(t, cl, p, 30)

	c.kill()
	// Requests that were already on their way to c may fail (502) until Caddy notices;
	// after that every request, bodies included, succeeds on a and b.
	eventually(t, "requests stop failing once the dead node is skipped", func() bool { return avoids(t, cl, p, "c", 30) })

	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"model":"m","n":%d,"pad":%q}`, i, strings.Repeat("x", 64<<10))
			got, _, err := whoami(cl, p, http.MethodPost, body)
			switch {
			case err != nil:
				errs <- err
			case got.Node == "c":
				errs <- errors.New("served by the dead node")
			case got.BodyLength != len(body):
				errs <- fmt.Errorf("node %s got %d body bytes, want %d", got.Node, got.BodyLength, len(body))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("with one node dead: %v", err)
	}
}
