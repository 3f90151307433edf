// Package load is the benchmark's closed-loop load generator: a fixed number of workers each
// send an Anthropic Messages request, read the whole answer, check it, and send the next,
// until the time (and a request cap) runs out. It runs in its own process (cmd/loadgen), so
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxcode/fluxcode/bench/internal/stats"
)

// Config is one load run.
type Config struct {
	// URL is the target's base URL; requests go to URL + "/v1/messages". Loopback only.
	URL string
	// Key is sent as x-api-key.
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
	// TTFB percentiles: time to the first byte of the answer's body (streams only).
	TTFBP50 float64 `json:"ttfb_p50_us,omitempty"`
	TTFBP99 float64 `json:"ttfb_p99_us,omitempty"`
}

// Body is the Messages request a worker sends.
func (c Config) Body() []byte {
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
	target := strings.TrimRight(cfg.URL, "/") + "/v1/messages"

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
	if cfg.Stream {
		stats.Sort(ttfb)
		res.TTFBP50, res.TTFBP99 = us(stats.Percentile(ttfb, 0.5)), us(stats.Percentile(ttfb, 0.99))
	}
	if err := ctx.Err(); err != nil && errors.Is(err, context.Canceled) {
		return res, err
	}
	return res, nil
}

// newRequest builds one Messages request.
func newRequest(ctx context.Context, target string, cfg Config, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("x-api-key", cfg.Key)
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
	s.err = check(resp.StatusCode, cfg.Stream, answer)
	return s
}

// check accepts only a complete successful answer of the requested shape.
func check(status int, stream bool, answer []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("status %d: %.200s", status, answer)
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
