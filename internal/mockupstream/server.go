package mockupstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Addr is where Start listens; default "127.0.0.1:0". Only loopback addresses are
	// accepted.
	Addr string
	// Default is the script of every key that has none of its own.
	Default Script
	// LogSize is how many per-request log entries are kept (default 10000; negative: none).
	LogSize int
	// RecordPerKey is how many received requests are kept per key (default 32; negative:
	// none).
	RecordPerKey int
	// MaxBodyBytes bounds a request body (default 32 MiB, Anthropic's Messages limit).
	MaxBodyBytes int64
	// Models is what Anthropic's GET /v1/models lists; default DefaultModels.
	Models []Model
	// OpenAIModels is what OpenAI's GET /v1/models lists; default DefaultOpenAIModels.
	OpenAIModels []Model
	// GeminiModels is what GET /v1beta/models lists; default DefaultGeminiModels.
	GeminiModels []Model
	// Now is the clock of the reset headers; default time.Now.
	Now func() time.Time
}

// Model is one entry of GET /v1/models.
type Model struct {
	ID             string
	DisplayName    string
	CreatedAt      time.Time
	MaxInputTokens int64 // default 200000
	MaxTokens      int64 // default 128000
}

// DefaultModels are listed when Options.Models is empty. The mock answers for any model
// name; this list only feeds GET /v1/models.
var DefaultModels = []Model{
	{ID: "claude-opus-5-5", DisplayName: "Claude Opus 5.5", CreatedAt: time.Date(2026, 9, 22, 0, 0, 0, 0, time.UTC)},
	{ID: "claude-sonnet-5-5", DisplayName: "Claude Sonnet 5.5", CreatedAt: time.Date(2026, 9, 22, 0, 0, 0, 0, time.UTC)},
	{ID: "claude-haiku-5-5", DisplayName: "Claude Haiku 5.5", CreatedAt: time.Date(2026, 9, 22, 0, 0, 0, 0, time.UTC)},
}

// Server is the mock upstream. It is an http.Handler; Start also serves it on a port.
type Server struct {
	opts     Options
	idPrefix string        // random per server, so request ids of two mocks never collide
	seq      atomic.Uint64 // request counter behind request and message ids
	done     chan struct{} // closed by Close: stalled and waiting answers give up
	close    sync.Once

	mu   sync.RWMutex
	keys map[string]*keyState
	def  Script

	logMu sync.Mutex
	log   ring[LogEntry]

	oauth *oauthServer // the login server (oauth.go)
	// google is Google's login server and Code Assist's user state (codeassist*.go).
	google *googleServer

	srv *http.Server
	ln  net.Listener
}

// New returns a Server configured by opts; call Start to listen, or use it as a handler.
func New(opts Options) *Server {
	if opts.LogSize == 0 {
		opts.LogSize = 10000
	}
	if opts.RecordPerKey == 0 {
		opts.RecordPerKey = 32
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 32 << 20
	}
	if len(opts.Models) == 0 {
		opts.Models = DefaultModels
	}
	if len(opts.OpenAIModels) == 0 {
		opts.OpenAIModels = DefaultOpenAIModels
	}
	if len(opts.GeminiModels) == 0 {
		opts.GeminiModels = DefaultGeminiModels
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return &Server{
		opts:     opts,
		idPrefix: "01mock" + hex.EncodeToString(b[:]),
		done:     make(chan struct{}),
		keys:     make(map[string]*keyState),
		def:      opts.Default,
		log:      newRing[LogEntry](opts.LogSize),
		oauth:    newOAuthServer(),
		google:   newGoogleServer(),
	}
}

// Start listens on Options.Addr and serves in the background.
func (s *Server) Start() error {
	addr := s.opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := checkLoopback(addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mockupstream: listen %s: %w", addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// checkLoopback refuses any listen address but a loopback one: tests stay on this machine.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("mockupstream: address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("mockupstream: address %q is not a loopback address", addr)
	}
	return nil
}

// URL is the base URL of a started server, e.g. "http://127.0.0.1:40123" (no trailing slash).
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String()
}

// Close stops serving: stalled and waiting answers end, connections are closed.
func (s *Server) Close() error {
	var err error
	s.close.Do(func() {
		close(s.done)
		if s.srv != nil {
			err = s.srv.Close()
		}
	})
	return err
}

// ServeHTTP answers provider API and control requests. Every answer carries request-id.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.seq.Add(1)
	reqID := s.newID("req_", n)
	w.Header().Set("request-id", reqID)

	path := r.URL.Path
	if s.serveOAuth(w, r) || s.serveCodex(w, r, n, reqID) || s.serveGoogleOAuth(w, r) {
		return
	}
	switch {
	case strings.HasPrefix(path, controlPrefix):
		s.serveControl(w, r)
	case path == "/api/hello":
		if r.Method != http.MethodHead && r.Method != http.MethodGet {
			writeAnthropicError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method not allowed", reqID)
			return
		}
		w.WriteHeader(http.StatusOK)
	case path == "/v1/messages":
		s.serveAnthropic(w, r, n, reqID, endpointMessages, http.MethodPost)
	case path == "/v1/messages/count_tokens":
		s.serveAnthropic(w, r, n, reqID, endpointCountTokens, http.MethodPost)
	case path == "/v1/chat/completions":
		s.serveOpenAI(w, r, n, reqID, endpointChat)
	case path == "/v1/responses":
		s.serveOpenAI(w, r, n, reqID, endpointResponses)
	case strings.HasPrefix(path, "/v1internal"):
		s.serveCodeAssist(w, r, n, reqID, strings.TrimPrefix(path, "/v1internal"))
	case strings.HasPrefix(path, "/v1beta/"):
		s.serveGemini(w, r, n, reqID, strings.TrimPrefix(path, "/v1beta"))
	case strings.HasPrefix(path, "/v1/models/") && strings.Contains(path, ":"):
		s.serveGemini(w, r, n, reqID, strings.TrimPrefix(path, "/v1")) // Gemini's v1 methods
	case (path == "/v1/models" || strings.HasPrefix(path, "/v1/models/")) && isAnthropicRequest(r):
		s.serveAnthropic(w, r, n, reqID, endpointModels, http.MethodGet)
	case path == "/v1/models" || strings.HasPrefix(path, "/v1/models/"):
		s.serveOpenAI(w, r, n, reqID, endpointModels)
	default:
		writeAnthropicError(w, http.StatusNotFound, "not_found_error", "Not found: "+r.Method+" "+path, reqID)
	}
}

// newID renders prefix + a 26-character id unique to this server and request number n.
func (s *Server) newID(prefix string, n uint64) string {
	var b [48]byte
	out := append(b[:0], prefix...)
	out = append(out, s.idPrefix...)
	var num [16]byte
	digits := strconv.AppendUint(num[:0], n, 16)
	for i := len(digits); i < 14; i++ {
		out = append(out, '0')
	}
	out = append(out, digits...)
	return string(out)
}

// state returns the key's state, creating it with the default script on first use.
func (s *Server) state(key string) *keyState {
	s.mu.RLock()
	st := s.keys[key]
	s.mu.RUnlock()
	if st != nil {
		return st
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st = s.keys[key]; st == nil {
		st = &keyState{recent: newRing[RecordedRequest](s.opts.RecordPerKey)}
		st.setScript(s.def, false)
		s.keys[key] = st
	}
	return st
}

// SetScript makes the key answer by sc (resetting its FailTimes count).
func (s *Server) SetScript(key string, sc Script) error {
	if err := sc.validate(); err != nil {
		return fmt.Errorf("mockupstream: script for key: %w", err)
	}
	st := s.state(key)
	st.mu.Lock()
	st.setScript(sc, true)
	st.mu.Unlock()
	return nil
}

// ReleaseModels answers the key's model-list requests held by Script.HoldModels, and every
// later one until the key's script is set again.
func (s *Server) ReleaseModels(key string) {
	st := s.state(key)
	st.mu.Lock()
	st.releaseModels()
	st.mu.Unlock()
}

// ClearScript returns the key to the default script.
func (s *Server) ClearScript(key string) {
	st := s.state(key)
	s.mu.RLock()
	def := s.def
	s.mu.RUnlock()
	st.mu.Lock()
	st.setScript(def, false)
	st.mu.Unlock()
}

// SetDefaultScript changes the script of every key that has none of its own, now and later.
// A FailTimes count applies to each such key separately.
func (s *Server) SetDefaultScript(sc Script) error {
	if err := sc.validate(); err != nil {
		return fmt.Errorf("mockupstream: default script: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.def = sc
	for _, st := range s.keys {
		st.mu.Lock()
		if !st.own {
			st.setScript(sc, false)
		}
		st.mu.Unlock()
	}
	return nil
}

// Stats returns the counters of one key (zero for a key never seen).
func (s *Server) Stats(key string) Stats {
	s.mu.RLock()
	st := s.keys[key]
	s.mu.RUnlock()
	if st == nil {
		return Stats{}
	}
	return st.stats()
}

// AllStats returns the counters of every key seen.
func (s *Server) AllStats() map[string]Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]Stats, len(s.keys))
	for k, st := range s.keys {
		out[k] = st.stats()
	}
	return out
}

// ResetPeak restarts the key's peak-in-flight from the number in flight now.
func (s *Server) ResetPeak(key string) {
	s.mu.RLock()
	st := s.keys[key]
	s.mu.RUnlock()
	if st != nil {
		st.peak.Store(st.inFlight.Load())
	}
}

// ResetKey forgets the key's script, counters and recorded requests. Its request log
// entries stay (Reset clears the log).
func (s *Server) ResetKey(key string) {
	s.mu.RLock()
	st, def := s.keys[key], s.def
	s.mu.RUnlock()
	if st == nil {
		return
	}
	st.resetCounters()
	st.mu.Lock()
	st.setScript(def, false)
	st.recent.clear()
	st.mu.Unlock()
}

// Reset returns the server to its state after New: default script from Options, no
// per-key scripts, zero counters, empty logs. Requests in flight stay counted in flight.
func (s *Server) Reset() {
	s.mu.Lock()
	s.def = s.opts.Default
	for _, st := range s.keys {
		st.resetCounters()
		st.mu.Lock()
		st.setScript(s.def, false)
		st.recent.clear()
		st.mu.Unlock()
	}
	s.mu.Unlock()
	s.logMu.Lock()
	s.log.clear()
	s.logMu.Unlock()
}

// WaitIdle waits until no request is in flight on any key, so that counters include every
// answer a client has already read (the mock books usage only after the last byte is
// flushed, a moment after the client may have it).
func (s *Server) WaitIdle(ctx context.Context) error {
	for {
		busy := false
		s.mu.RLock()
		for _, st := range s.keys {
			if st.inFlight.Load() > 0 {
				busy = true
				break
			}
		}
		s.mu.RUnlock()
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mockupstream: wait for idle: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// Log returns up to n of the latest request log entries (oldest first), of one key or,
// with key "", of all; n <= 0 means all that are kept. An answer's entry is added a moment
// after its last byte is flushed: call WaitIdle first to see every answer a client has read.
func (s *Server) Log(key string, n int) []LogEntry {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.last(n, func(e *LogEntry) bool { return key == "" || e.Key == key })
}

// Requests returns up to n of the key's latest received requests, oldest first;
// n <= 0 means all that are kept.
func (s *Server) Requests(key string, n int) []RecordedRequest {
	s.mu.RLock()
	st := s.keys[key]
	s.mu.RUnlock()
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.recent.last(n, func(*RecordedRequest) bool { return true })
}

func (s *Server) appendLog(e LogEntry) {
	s.logMu.Lock()
	s.log.add(e)
	s.logMu.Unlock()
}

// readBody reads the whole request body, bounded by MaxBodyBytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	if r.ContentLength > 0 && r.ContentLength <= s.opts.MaxBodyBytes {
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		return buf, nil
	}
	buf, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	return buf, nil
}

// pacer waits between stream events, reusing one timer per answer.
type pacer struct {
	ctx   context.Context
	done  <-chan struct{}
	timer *time.Timer
}

// wait pauses for d; false when the peer left or the server is closing.
func (p *pacer) wait(d time.Duration) bool {
	if d <= 0 {
		return p.ctx.Err() == nil
	}
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case <-p.timer.C:
		return true
	case <-p.ctx.Done():
	case <-p.done:
	}
	p.timer.Stop()
	return false
}

func (p *pacer) stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}

// hold blocks until the peer leaves or the server closes: a stalled answer.
func (p *pacer) hold() {
	select {
	case <-p.ctx.Done():
	case <-p.done:
	}
}

// flushErrorer is what net/http's response writer offers to learn whether a flush reached
// the connection.
type flushErrorer interface{ FlushError() error }

func flush(w http.ResponseWriter) error {
	if f, ok := w.(flushErrorer); ok {
		return f.FlushError()
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
		return nil
	}
	return errors.New("response writer cannot flush")
}

// resetConn ends the connection with a TCP reset, so the peer sees a network error.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// not hijackable (e.g. HTTP/2): the standard way to abort a response
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close with RST rather than FIN
	}
	_ = conn.Close()
}
