// Package load is the benchmark's closed-loop load generator: a fixed number of workers each
// send a request (Anthropic Messages, OpenAI Responses or Gemini generateContent), read the
// whole answer, check it, and send the next, until the time (and a request cap) runs out. It runs in its own process (cmd/loadgen), so
// its CPU is never counted against a target.
package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxcode/fluxcode/bench/internal/stats"
)

// Protocols the load generator speaks, each through the route its best-known client uses.
const (
	Anthropic = "anthropic" // POST /v1/messages (Claude Code), key in x-api-key
	OpenAI    = "openai"    // POST /v1/responses (Codex), key as Authorization: Bearer
	// Gemini: POST /v1beta/models/{model}:generateContent, or :streamGenerateContent?alt=sse
	// (Gemini CLI), key in x-goog-api-key.
	Gemini = "gemini"
)

// Protocols lists the protocols in the order results show them.
var Protocols = []string{Anthropic, OpenAI, Gemini}

// Config is one load run.
type Config struct {
	// URL is the target's base URL; requests go to URL + the protocol's path. Loopback only.
	URL string
	// Protocol is one of Protocols; "" means Anthropic.
	Protocol string
	// Key is sent where the protocol's clients send it.
	Key string
	// Model is the body's model.
	Model string
	// Stream asks for an SSE answer.
	Stream bool
	// Concurrency is the number of workers, each with at most one request in flight.
	Concurrency int
	// Warmup is run first and not measured (connections open, caches fill).
	Warmup time.Duration
	// Duration is the measured window after Warmup.
	Duration time.Duration
	// MaxRequests caps the requests sent in all (0: no cap beyond the time).
	MaxRequests int64
	// System is the body's system text, e.g. a mock directive; "" for none.
	System string
}

// Result is what one run measured. Latencies are in microseconds.
type Result struct {
	Concurrency int  `json:"concurrency"`
	Stream      bool `json:"stream"`
	// Requests is the number of answers completed (successfully) inside the measured window.
	Requests int64 `json:"requests"`
	// Errors counts failed requests in the window; ErrorSample is the first failure.
	Errors      int64  `json:"errors"`
	ErrorSample string `json:"error_sample,omitempty"`
	// Total is every answer completed during the run, warm-up and failures included: the
	// divisor of the per-request CPU and counter figures, which cover the whole run.
	Total   int64   `json:"total"`
	Seconds float64 `json:"seconds"`
	RPS     float64 `json:"rps"`
	P50     float64 `json:"p50_us"`
	P90     float64 `json:"p90_us"`
	P99     float64 `json:"p99_us"`
	P999    float64 `json:"p999_us"`
	// TTFB percentiles: time to the first byte of the answer's body (streams only).
	TTFBP50 float64 `json:"ttfb_p50_us,omitempty"`
	TTFBP99 float64 `json:"ttfb_p99_us,omitempty"`
}

// Body is the request a worker sends.
func (c Config) Body() []byte {
	const prompt = "Say hello to the benchmark in one short sentence."
	switch c.Protocol {
	case OpenAI:
		req := map[string]any{"model": c.Model, "stream": c.Stream, "input": prompt, "max_output_tokens": 256}
		if c.System != "" {
			req["instructions"] = c.System
		}
		b, _ := json.Marshal(req)
		return b
	case Gemini:
		req := map[string]any{
			"contents":         []any{map[string]any{"role": "user", "parts": []any{map[string]string{"text": prompt}}}},
			"generationConfig": map[string]int{"maxOutputTokens": 256},
		}
		if c.System != "" {
			req["systemInstruction"] = map[string]any{"parts": []any{map[string]string{"text": c.System}}}
		}
		b, _ := json.Marshal(req)
		return b
	}
	req := map[string]any{
		"model":      c.Model,
		"max_tokens": 256,
		"stream":     c.Stream,
		"messages": []map[string]string{
			{"role": "user", "content": "Say hello to the benchmark in one short sentence."},
		},
	}
	if c.System != "" {
		req["system"] = c.System
	}
	b, _ := json.Marshal(req) // a map of strings and ints always marshals
	return b
}

func (c Config) validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("load: URL %q is not an http(s) URL", c.URL)
	}
	if err := checkLoopback(u.Hostname()); err != nil {
		return err
	}
	if c.Concurrency < 1 {
		return errors.New("load: concurrency must be at least 1")
	}
	if c.Protocol != "" && !slices.Contains(Protocols, c.Protocol) {
		return fmt.Errorf("load: protocol %q is not one of %v", c.Protocol, Protocols)
	}
	if c.Duration <= 0 {
		return errors.New("load: duration must be positive")
	}
	return nil
}

// checkLoopback refuses any target but this machine's loopback: the benchmark never sends
// traffic anywhere else.
func checkLoopback(host string) error {
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("load: target host %q is not a loopback address", host)
	}
	return nil
}

// NewClient returns an HTTP/1.1 client keeping one connection per worker.
func NewClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil, // never through an environment proxy: loopback only
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 16,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		WriteBufferSize:     8 << 10,
		ReadBufferSize:      16 << 10,
	}}
}

// sample is one finished request.
type sample struct {
	at      time.Time // completion
	latency time.Duration
	ttfb    time.Duration
	err     error
}

// Run generates load as cfg says and returns the measurements of the window after warm-up.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	client := NewClient(cfg.Concurrency)
	defer client.CloseIdleConnections()
	body := cfg.Body()
	target := strings.TrimRight(cfg.URL, "/") + cfg.path()

	start := time.Now()
	windowStart := start.Add(cfg.Warmup)
	windowEnd := windowStart.Add(cfg.Duration)
	// A hard bound beyond the window, so that one stuck request cannot hold the run.
	ctx, cancel := context.WithDeadline(ctx, windowEnd.Add(30*time.Second))
	defer cancel()

	var sent atomic.Int64
	perWorker := make([][]sample, cfg.Concurrency)
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			var out []sample
			for time.Now().Before(windowEnd) && ctx.Err() == nil {
				if cfg.MaxRequests > 0 && sent.Add(1) > cfg.MaxRequests {
					break
				}
				out = append(out, do(ctx, client, target, cfg, body, buf))
			}
			perWorker[w] = out
		}()
	}
	wg.Wait()

	res := Result{Concurrency: cfg.Concurrency, Stream: cfg.Stream}
	var lat, ttfb []time.Duration
	last := windowStart
	for _, ws := range perWorker {
		for _, s := range ws {
			res.Total++
			if s.at.Before(windowStart) || s.at.After(windowEnd) {
				continue
			}
			if s.err != nil {
				res.Errors++
				if res.ErrorSample == "" {
					res.ErrorSample = s.err.Error()
				}
				continue
			}
			res.Requests++
			lat = append(lat, s.latency)
			ttfb = append(ttfb, s.ttfb)
			if s.at.After(last) {
				last = s.at
			}
		}
	}
	window := windowEnd.Sub(windowStart)
	if stop := time.Now(); stop.Before(windowEnd) { // ended early: request cap or ctx
		window = last.Sub(windowStart)
	}
	res.Seconds = window.Seconds()
	if res.Seconds > 0 {
		res.RPS = float64(res.Requests) / res.Seconds
	}
	stats.Sort(lat)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	res.P50, res.P90, res.P99 = us(stats.Percentile(lat, 0.5)), us(stats.Percentile(lat, 0.9)), us(stats.Percentile(lat, 0.99))
	res.P999 = us(stats.Percentile(lat, 0.999))
	if cfg.Stream {
		stats.Sort(ttfb)
		res.TTFBP50, res.TTFBP99 = us(stats.Percentile(ttfb, 0.5)), us(stats.Percentile(ttfb, 0.99))
	}
	if err := ctx.Err(); err != nil && errors.Is(err, context.Canceled) {
		return res, err
	}
	return res, nil
}

// path is the protocol's route for the request.
func (c Config) path() string {
	switch c.Protocol {
	case OpenAI:
		return "/v1/responses"
	case Gemini:
		if c.Stream {
			return "/v1beta/models/" + c.Model + ":streamGenerateContent?alt=sse"
		}
		return "/v1beta/models/" + c.Model + ":generateContent"
	}
	return "/v1/messages"
}

// newRequest builds one request, its key where the protocol's clients put it.
func newRequest(ctx context.Context, target string, cfg Config, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("content-type", "application/json")
	switch cfg.Protocol {
	case OpenAI:
		req.Header.Set("authorization", "Bearer "+cfg.Key)
	case Gemini:
		req.Header.Set("x-goog-api-key", cfg.Key)
	default:
		req.Header.Set("anthropic-version", "2023-06-01")
		req.Header.Set("x-api-key", cfg.Key)
	}
	return req, nil
}

// do sends one request, reads the whole answer into buf (growing past it only for a large
// answer) and checks that it is a complete Messages answer.
func do(ctx context.Context, client *http.Client, target string, cfg Config, body, buf []byte) sample {
	begin := time.Now()
	s := sample{}
	req, err := newRequest(ctx, target, cfg, body)
	if err != nil {
		s.err, s.at = err, time.Now()
		return s
	}
	resp, err := client.Do(req)
	if err != nil {
		s.err, s.at = err, time.Now()
		return s
	}
	defer resp.Body.Close()
	n, first := 0, time.Time{}
	var overflow []byte
	for {
		m, rerr := resp.Body.Read(buf[n:])
		if m > 0 && first.IsZero() {
			first = time.Now()
		}
		n += m
		if n == len(buf) { // keep reading; only the head and tail matter for the check
			overflow = append(overflow, buf[:n]...)
			n = 0
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			s.err = fmt.Errorf("read answer: %w", rerr)
			break
		}
	}
	s.at = time.Now()
	s.latency = s.at.Sub(begin)
	if !first.IsZero() {
		s.ttfb = first.Sub(begin)
	}
	if s.err != nil {
		return s
	}
	answer := buf[:n]
	if overflow != nil {
		answer = append(overflow, answer...)
	}
	s.err = check(cfg.Protocol, resp.StatusCode, cfg.Stream, answer)
	return s
}

// complete are the marks of a complete answer per protocol: for a stream, its last event;
// for JSON, what every whole answer holds.
var complete = map[string]struct{ stream, json [][]byte }{
	OpenAI: {stream: [][]byte{[]byte("event: response.completed")},
		json: [][]byte{[]byte(`"object":"response"`), []byte(`"usage"`)}},
	Gemini: {stream: [][]byte{[]byte(`"finishReason"`), []byte(`"usageMetadata"`)},
		json: [][]byte{[]byte(`"candidates"`), []byte(`"usageMetadata"`)}},
}

// check accepts only a complete successful answer of the requested shape.
func check(protocol string, status int, stream bool, answer []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("status %d: %.200s", status, answer)
	}
	if marks, ok := complete[protocol]; ok {
		want := marks.json
		if stream {
			want = marks.stream
		}
		for _, m := range want {
			if !bytes.Contains(answer, m) {
				return fmt.Errorf("%s answer lacks %s: %.200s", protocol, m, tail(answer, 200))
			}
		}
		return nil
	}
	if stream {
		if !bytes.Contains(answer, []byte("event: message_stop")) {
			return fmt.Errorf("stream ended without message_stop: %.200s", tail(answer, 200))
		}
		return nil
	}
	if !bytes.Contains(answer, []byte(`"usage"`)) || !bytes.Contains(answer, []byte(`"type":"message"`)) {
		return fmt.Errorf("JSON answer is not a message: %.200s", answer)
	}
	return nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
