package deploy

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// startDyingNode starts a stand-in node whose health probe answers (while healthy is set)
// but which dies on every other request: it reads the request and closes the connection
// without a word, as a node killed mid-request does. /own-error answers its own 529 with a
// body, which Caddy must pass on untouched.
func startDyingNode(t testing.TB, ip string) *node {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	n := &node{name: "dying", addr: ln.Addr().String(), step: make(chan struct{})}
	n.healthy.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, r *http.Request) {
		if !n.healthy.Load() {
			http.Error(w, `{"status":"unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("/own-error", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(529)
		io.WriteString(w, `{"type":"error","error":{"type":"overloaded_error","message":"the node's own words"}}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n.served.Add(1)
		io.Copy(io.Discard, r.Body)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
	})
	n.srv = &http.Server{Handler: mux}
	go n.srv.Serve(ln)
	t.Cleanup(func() { n.srv.Close() })
	return n
}

// entryError is what a client got from Caddy itself.
type entryError struct {
	status              int
	retryAfter, retry   string
	contentType, body   string
	anthropic, gemini   bool // the shapes the body parsed as
	openai, api         bool
	errType, message    string
	googleStatus        string
	googleCode          int
	openaiCode, apiCode string
}

func postThrough(t testing.TB, p *proxy, path string) entryError {
	t.Helper()
	resp, err := client(nil).Post(p.url+path, "application/json", strings.NewReader(`{"model":"m"}`))
	if err != nil {
		t.Fatalf("POST %s through Caddy: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the answer to %s: %v", path, err)
	}
	e := entryError{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"),
		retry: resp.Header.Get("X-Should-Retry"), contentType: resp.Header.Get("Content-Type"), body: string(b)}
	var v struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
			Status  string `json:"status"`
			Code    any    `json:"code"`
			Param   any    `json:"param"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return e
	}
	e.errType, e.message, e.googleStatus = v.Error.Type, v.Error.Message, v.Error.Status
	switch code := v.Error.Code.(type) {
	case float64:
		e.googleCode = int(code)
	case string:
		e.openaiCode, e.apiCode = code, code
	}
	e.anthropic = v.Type == "error" && v.Error.Type != "" && v.Error.Code == nil
	e.gemini = v.Type == "" && e.googleCode != 0 && v.Error.Status != ""
	e.openai = v.Type == "" && v.Error.Type != "" && e.openaiCode != ""
	e.api = v.Type == "" && v.Error.Type == "" && e.apiCode != ""
	return e
}

// checkEntryError fails t unless e is Caddy's own retryable error with status, in the shape
// of the path's protocol.
func checkEntryError(t testing.TB, path string, e entryError, status int) {
	t.Helper()
	if e.status != status || e.retry != "true" || e.retryAfter != "1" || e.contentType != "application/json" ||
		!strings.HasPrefix(e.message, "FluxCode: ") {
		t.Errorf("POST %s: status %d (want %d), x-should-retry %q, Retry-After %q, Content-Type %q: %s",
			path, e.status, status, e.retry, e.retryAfter, e.contentType, e.body)
	}
	switch {
	case strings.HasPrefix(path, "/v1/chat/") || strings.HasPrefix(path, "/v1/responses"):
		if !e.openai || e.errType != "server_error" {
			t.Errorf("POST %s: not an OpenAI server_error: %s", path, e.body)
		}
	case strings.HasPrefix(path, "/v1beta/"):
		if !e.gemini || e.googleCode != status || e.googleStatus != "UNAVAILABLE" {
			t.Errorf("POST %s: not a Google UNAVAILABLE error with code %d: %s", path, status, e.body)
		}
	case strings.HasPrefix(path, "/v1/"):
		if !e.anthropic || e.errType != "overloaded_error" {
			t.Errorf("POST %s: not an Anthropic overloaded_error: %s", path, e.body)
		}
	default:
		if !e.api {
			t.Errorf("POST %s: not the API's error shape: %s", path, e.body)
		}
	}
}

// entryPaths are a route of each protocol and of the JSON API.
var entryPaths = []string{
	"/v1/messages", "/v1/chat/completions", "/v1/responses",
	"/v1beta/models/gemini-3-pro:streamGenerateContent", "/api/v1/auth/login",
}

// TestCaddyOwnErrorsAreJSON: when Caddy itself has no answer (the node died mid-request:
// 502; no node is up: 503), the client gets a JSON error in its protocol's shape with a
// retry hint, not an empty body; a node's own error answer passes through untouched.
func TestCaddyOwnErrorsAreJSON(t *testing.T) {
	// Caddy skips a node after two failed requests (max_fails): three nodes give six
	// deaths mid-request before none is left, enough for one request per path.
	nodes := []*node{startDyingNode(t, "127.0.0.11"), startDyingNode(t, "127.0.0.12"), startDyingNode(t, "127.0.0.13")}
	p := startProxy(t, "off", nodes...)

	own := postThrough(t, p, "/own-error")
	if own.status != 529 || own.retry != "" || own.retryAfter != "" || !strings.Contains(own.body, "the node's own words") {
		t.Errorf("a node's own error was not passed through unchanged: %+v", own)
	}
	for _, path := range entryPaths {
		checkEntryError(t, path, postThrough(t, p, path), http.StatusBadGateway)
	}
	var died int64
	for _, n := range nodes {
		died += n.served.Load()
	}
	if died != int64(len(entryPaths)) {
		t.Errorf("the nodes died on %d requests, want %d: some 502s did not come from a death mid-request", died, len(entryPaths))
	}

	// Every node's probe fails: no node is up.
	for _, n := range nodes {
		n.healthy.Store(false)
	}
	eventually(t, "Caddy answers 503 once no node is healthy", func() bool {
		return postThrough(t, p, "/v1/messages").status == http.StatusServiceUnavailable
	})
	for _, path := range entryPaths {
		checkEntryError(t, path, postThrough(t, p, path), http.StatusServiceUnavailable)
	}
}
