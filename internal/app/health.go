package app

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fluxcode/fluxcode/internal/config"
)

// healthTimeout bounds the whole /health probe: a load balancer must get an answer quickly,
// and a component slower than this is as good as down.
const healthTimeout = time.Second

// componentHealth is one line of /health.
type componentHealth struct {
	Status    string  `json:"status"` // ok | error
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

// healthBody is the /health answer.
type healthBody struct {
	Status     string                     `json:"status"` // ok | error | draining
	Node       string                     `json:"node,omitempty"`
	Components map[string]componentHealth `json:"components"`
}

// pinger is a component /health checks.
type pinger func(ctx context.Context) error

// health answers 200 when every component answers within healthTimeout, else 503 with the
// failing component's error. While the node shuts down it answers 503 "draining", so a load
// balancer stops sending new requests before the listener closes.
func (m *Main) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()

	checks := map[string]pinger{"database": m.store.Ping}
	if m.cfg.Cluster() {
		checks["redis"] = m.coord.Ping
	}
	body := healthBody{Status: "ok", Node: m.nodeName, Components: make(map[string]componentHealth, len(checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, ping := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := m.probe(ctx, ping)
			mu.Lock()
			body.Components[name] = c
			mu.Unlock()
		}()
	}
	wg.Wait()

	status := http.StatusOK
	for _, c := range body.Components {
		if c.Status != "ok" {
			body.Status, status = "error", http.StatusServiceUnavailable
		}
	}
	if m.draining.Load() {
		body.Status, status = "draining", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// live answers 200 while the node serves and 503 once it drains, without asking PostgreSQL or
// Redis. A load balancer should probe this, not /health: when the shared database or Redis is
// down every node's /health is 503, and a balancer that then pulls every node answers with
// its own empty 503, where the nodes would have answered each request with a clear error in
// the client's protocol.
func (m *Main) live(w http.ResponseWriter, r *http.Request) {
	status, body := http.StatusOK, healthBody{Status: "ok", Node: m.nodeName}
	if m.draining.Load() {
		status, body.Status = http.StatusServiceUnavailable, "draining"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// probe runs one check, giving up when ctx ends even if the check ignores its context.
func (m *Main) probe(ctx context.Context, ping pinger) componentHealth {
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- ping(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	c := componentHealth{Status: "ok", LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		if ctx.Err() != nil {
			err = context.DeadlineExceeded
		}
		c.Status, c.Error = "error", m.scrub(err.Error())
	}
	return c
}

// scrub removes configured secrets from an error text before it is shown: driver errors can
// quote a DSN.
func (m *Main) scrub(s string) string { return scrubSecrets(m.cfg, s) }

// scrubSecrets replaces every configured connection secret in s by "***".
func scrubSecrets(cfg config.Config, s string) string {
	for _, secret := range []string{cfg.DatabasePassword, cfg.RedisPassword, cfg.RedisSentinelPassword, cfg.DatabaseURL, cfg.RedisURL} {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "***")
		}
	}
	for _, u := range []string{cfg.DatabaseURL, cfg.RedisURL} {
		if pw := urlPassword(u); pw != "" {
			s = strings.ReplaceAll(s, pw, "***")
		}
	}
	return s
}
