package app

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fluxcode/fluxcode/internal/config"
)

// TestMetricsClosedBeyondLoopbackWithoutToken: without METRICS_TOKEN, /metrics answers only
// on a node that listens on loopback alone; a node listening on every interface answers 403
// with a message naming METRICS_TOKEN (before, it served its metrics to anyone). With a
// token, the token decides.
func TestMetricsClosedBeyondLoopbackWithoutToken(t *testing.T) {
	serve := func(host, token, auth string) (int, string) {
		m := &Main{cfg: config.Config{ServerHost: host, ServerPort: 8080, MetricsToken: token},
			registry: prometheus.NewRegistry(), logger: slog.New(slog.DiscardHandler)}
		req := httptest.NewRequest("GET", "/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		rec := httptest.NewRecorder()
		m.metricsHandler().ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	const token = "metrics-token-0123456789"
	for _, host := range []string{"0.0.0.0", "", "::", "10.1.2.3"} {
		code, body := serve(host, "", "")
		if code != http.StatusForbidden || !strings.Contains(body, "METRICS_TOKEN") {
			t.Errorf("SERVER_HOST=%q without a token: %d %s, want 403 naming METRICS_TOKEN", host, code, body)
		}
		if code, _ := serve(host, token, token); code != http.StatusOK {
			t.Errorf("SERVER_HOST=%q with the token: %d", host, code)
		}
		if code, _ := serve(host, token, ""); code != http.StatusUnauthorized {
			t.Errorf("SERVER_HOST=%q, token set, none sent: %d", host, code)
		}
	}
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		if code, body := serve(host, "", ""); code != http.StatusOK {
			t.Errorf("SERVER_HOST=%q without a token: %d %s, want open", host, code, body)
		}
	}
}
