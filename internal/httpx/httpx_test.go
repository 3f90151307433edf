package httpx_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fluxcode/fluxcode/internal/httpx"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stack builds the middleware chain the app uses, around mux.
func stack(t *testing.T, mux *http.ServeMux, trusted []netip.Prefix) (http.Handler, *syncBuffer, *prometheus.Registry) {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(httpx.NewLogHandler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	reg := prometheus.NewRegistry()
	m, err := httpx.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = mux
	h = httpx.Recover(logger)(h)
	h = m.Middleware(h)
	h = httpx.AccessLog(logger)(h)
	h = httpx.ClientIPs(trusted)(h)
	h = httpx.WithRequestIDs(h)
	return h, logs, reg
}

func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestRequestIDInResponseAndEveryLogLine(t *testing.T) {
	mux := http.NewServeMux()
	var logger *slog.Logger
	mux.HandleFunc("GET /work", func(w http.ResponseWriter, r *http.Request) {
		logger.InfoContext(r.Context(), "handler says hello")
		io.WriteString(w, httpx.RequestID(r.Context()))
	})
	h, logs, _ := stack(t, mux, nil)
	logger = slog.New(httpx.NewLogHandler(slog.NewJSONHandler(logs, nil)))

	for name, tc := range map[string]struct {
		incoming string
		keep     bool
	}{
		"sane incoming id kept":    {"caddy-req.42:abc_DEF", true},
		"none given":               {"", false},
		"newline refused":          {"abc\ndef", false},
		"space refused":            {"abc def", false},
		"too long refused":         {strings.Repeat("a", 129), false},
		"quote refused":            {`abc"def`, false},
		"longest accepted is kept": {strings.Repeat("b", 128), true},
	} {
		t.Run(name, func(t *testing.T) {
			before := len(logLines(t, logs.String()))
			req := httptest.NewRequest("GET", "/work", nil)
			if tc.incoming != "" {
				req.Header.Set("X-Request-Id", tc.incoming)
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			id := rr.Header().Get("X-Request-Id")
			if tc.keep && id != tc.incoming {
				t.Errorf("id = %q, want the incoming %q", id, tc.incoming)
			}
			if !tc.keep && (id == tc.incoming || len(id) != 32) {
				t.Errorf("id = %q, want a fresh 32-character id", id)
			}
			if rr.Body.String() != id {
				t.Errorf("handler saw id %q, response header %q", rr.Body.String(), id)
			}
			lines := logLines(t, logs.String())[before:]
			if len(lines) != 2 {
				t.Fatalf("got %d log lines, want handler + access: %v", len(lines), lines)
			}
			for _, l := range lines {
				if l["request_id"] != id {
					t.Errorf("log line %v lacks request_id %q", l, id)
				}
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, httpx.ClientIP(r.Context()).String())
	})
	h, _, _ := stack(t, mux, trusted)
	for name, tc := range map[string]struct {
		peer string
		xff  []string
		want string
	}{
		"untrusted peer: header ignored":         {"203.0.113.9:5555", []string{"1.2.3.4"}, "203.0.113.9"},
		"trusted peer: client from header":       {"10.1.2.3:5555", []string{"198.51.100.7"}, "198.51.100.7"},
		"spoofed left entry is skipped":          {"10.1.2.3:5555", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},
		"trusted hops are walked from the right": {"10.1.2.3:5555", []string{"198.51.100.7, 10.9.9.9, 10.8.8.8"}, "198.51.100.7"},
		"repeated headers count in order":        {"10.1.2.3:5555", []string{"6.6.6.6", "198.51.100.8, 10.9.9.9"}, "198.51.100.8"},
		"all trusted: leftmost":                  {"10.1.2.3:5555", []string{"10.5.5.5, 10.6.6.6"}, "10.5.5.5"},
		"garbage hop: stop at the last trusted":  {"10.1.2.3:5555", []string{"198.51.100.7, junk"}, "10.1.2.3"},
		"trusted peer without header":            {"10.1.2.3:5555", nil, "10.1.2.3"},
		"ipv6 trusted peer":                      {"[::1]:5555", []string{"2001:db8::1"}, "2001:db8::1"},
		"ipv4-mapped peer is unmapped":           {"[::ffff:10.1.2.3]:5555", []string{"198.51.100.9"}, "198.51.100.9"},
		"hop with port":                          {"10.1.2.3:5555", []string{"198.51.100.7:443"}, "198.51.100.7"},
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, req)
			if got := rr.Body.String(); got != tc.want {
				t.Errorf("client ip = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestAccessLogNeverShowsTheQuery(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1beta/models/{model}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})
	h, logs, _ := stack(t, mux, nil)
	req := httptest.NewRequest("POST", "/v1beta/models/gemini:generateContent?key=AIzaSECRETSECRET", nil)
	h.ServeHTTP(httptest.NewRecorder(), req)
	out := logs.String()
	if strings.Contains(out, "SECRET") {
		t.Fatalf("access log shows the query: %s", out)
	}
	lines := logLines(t, out)
	if len(lines) != 1 || lines[0]["status"] != float64(418) || lines[0]["route"] != "POST /v1beta/models/{model}" ||
		lines[0]["path"] != "/v1beta/models/gemini:generateContent" {
		t.Errorf("access log = %v", lines)
	}
}

func TestRecoverAnswers500AndLogsTheStack(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boom", func(w http.ResponseWriter, r *http.Request) { panic("kaboom") })
	h, logs, reg := stack(t, mux, nil)
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest("GET", "/boom", nil))
	if rr.Code != 500 || !strings.Contains(rr.Body.String(), `"code":"internal"`) || !strings.Contains(rr.Body.String(), rr.Header().Get("X-Request-Id")) {
		t.Errorf("answer %d %s", rr.Code, rr.Body)
	}
	if !strings.Contains(logs.String(), "kaboom") || !strings.Contains(logs.String(), "goroutine") {
		t.Errorf("panic not logged with its stack: %s", logs)
	}
	if got := testutil.ToFloat64(counter(t, reg, "GET /boom", "GET", "500")); got != 1 {
		t.Errorf("500 counted %v times", got)
	}
}

// counter finds the request counter for the labels.
func counter(t *testing.T, reg *prometheus.Registry, route, method, code string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "fluxcode_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] == route && labels["method"] == method && labels["code"] == code {
				return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x", Help: "x"}, func() float64 { return m.GetCounter().GetValue() })
			}
		}
	}
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x", Help: "x"}, func() float64 { return 0 })
}

func TestMetricsByRoute(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {})
	h, _, reg := stack(t, mux, nil)
	for _, p := range []string{"/items/1", "/items/2", "/nope"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("BREW", "/items/3", nil))
	if got := testutil.ToFloat64(counter(t, reg, "GET /items/{id}", "GET", "200")); got != 2 {
		t.Errorf("route counter = %v, want 2", got)
	}
	if got := testutil.ToFloat64(counter(t, reg, "unmatched", "GET", "404")); got != 1 {
		t.Errorf("unmatched counter = %v, want 1", got)
	}
	if got := testutil.ToFloat64(counter(t, reg, "unmatched", "OTHER", "405")); got != 1 {
		t.Errorf("odd method counter = %v, want 1 under OTHER", got)
	}
}

// TestStreamsFlushThroughTheChain shows a handler's flush reaches the client through every
// middleware: the handler waits for the client to have read event 1 before sending event 2,
// so a buffered chain would never finish (the context bounds that case).
func TestStreamsFlushThroughTheChain(t *testing.T) {
	gotFirst := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush: %v", err)
			return
		}
		select {
		case <-gotFirst:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: 2\n\n")
	})
	h, _, _ := stack(t, mux, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/sse", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: 1\n" {
		t.Fatalf("first event: %q %v (not flushed?)", line, err)
	}
	close(gotFirst)
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: 2\n\n" {
		t.Errorf("rest = %q", rest)
	}
}
