package gatewaytest

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Tap serves a handler (the mock upstream) on its own loopback server and records every
// answer byte for byte, so a test can compare what a client received with what the upstream
// really sent. Point accounts' BaseURL at Tap.URL.
type Tap struct {
	URL string

	mu        sync.Mutex
	exchanges []*Exchange
	gates     map[string]chan struct{}
}

// Exchange is one request through the tap and the answer as sent.
type Exchange struct {
	Path      string
	UpstreamK string // the credential presented (x-api-key, or the Bearer token)
	Status    int
	Header    http.Header
	mu        sync.Mutex
	body      bytes.Buffer
}

// Body returns the bytes written so far.
func (e *Exchange) Body() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return bytes.Clone(e.body.Bytes())
}

// NewTap starts a tap in front of h.
func NewTap(t testing.TB, h http.Handler) *Tap {
	tp := &Tap{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-Api-Key")
		if key == "" {
			key = r.Header.Get("Authorization")
		}
		ex := &Exchange{Path: r.URL.Path, UpstreamK: key}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		tp.mu.Lock()
		tp.exchanges = append(tp.exchanges, ex)
		var gate chan struct{}
		for marker, ch := range tp.gates {
			if bytes.Contains(body, []byte(marker)) {
				gate = ch
			}
		}
		tp.mu.Unlock()
		if gate != nil {
			<-gate
		}
		h.ServeHTTP(&tapWriter{ResponseWriter: w, ex: ex}, r)
	}))
	t.Cleanup(srv.Close)
	tp.URL = srv.URL
	return tp
}

// Hold makes requests whose body contains marker wait before they reach the handler, until
// the returned release is called (also at the end of the test).
func (tp *Tap) Hold(t testing.TB, marker string) (release func()) {
	ch := make(chan struct{})
	tp.mu.Lock()
	if tp.gates == nil {
		tp.gates = make(map[string]chan struct{})
	}
	tp.gates[marker] = ch
	tp.mu.Unlock()
	release = sync.OnceFunc(func() {
		tp.mu.Lock()
		delete(tp.gates, marker)
		tp.mu.Unlock()
		close(ch)
	})
	t.Cleanup(release)
	return release
}

// Exchanges returns every exchange so far, oldest first.
func (tp *Tap) Exchanges() []*Exchange {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]*Exchange(nil), tp.exchanges...)
}

type tapWriter struct {
	http.ResponseWriter
	ex *Exchange
}

func (w *tapWriter) WriteHeader(code int) {
	w.ex.mu.Lock()
	if w.ex.Status == 0 {
		w.ex.Status = code
		w.ex.Header = w.Header().Clone()
	}
	w.ex.mu.Unlock()
	w.ResponseWriter.WriteHeader(code)
}

func (w *tapWriter) Write(p []byte) (int, error) {
	w.ex.mu.Lock()
	if w.ex.Status == 0 {
		w.ex.Status = http.StatusOK
		w.ex.Header = w.Header().Clone()
	}
	w.ex.body.Write(p)
	w.ex.mu.Unlock()
	return w.ResponseWriter.Write(p)
}

// Unwrap lets the mock flush and hijack (connection resets) through the tap.
func (w *tapWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// FlushError passes a flush through (the mock checks that each event reached the socket).
func (w *tapWriter) FlushError() error { return http.NewResponseController(w.ResponseWriter).Flush() }

// Flush passes a flush through.
func (w *tapWriter) Flush() { _ = w.FlushError() }

// Hijack lets the mock reset the connection through the tap.
func (w *tapWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}
