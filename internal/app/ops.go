package app

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fluxcode/fluxcode/internal/httpx"
)

// metricsHandler serves /metrics, behind METRICS_TOKEN when one is configured. Without a
// token, /metrics is open only on a node that listens on loopback alone; a node reachable
// from elsewhere answers 403 (and says so at start), because the metrics name routes,
// accounts' traffic and the node's internals. The node still starts: /metrics is optional,
// and refusing to start would break every deployment that does not scrape it.
func (m *Main) metricsHandler() http.Handler {
	h := promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
	switch {
	case m.cfg.MetricsToken != "":
		return requireBearer(m.cfg.MetricsToken, h)
	case m.cfg.ListensOnLoopback():
		return h
	}
	m.logger.Warn("METRICS_TOKEN is not set and the node listens beyond loopback: /metrics answers 403 until METRICS_TOKEN is set", "addr", m.cfg.Addr())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, r, http.StatusForbidden, "forbidden",
			"/metrics is closed: this node listens beyond loopback and METRICS_TOKEN is not set; set METRICS_TOKEN and scrape with Authorization: Bearer <token>")
	})
}

// requireBearer lets through only requests with Authorization: Bearer <token>. Both sides are
// hashed first, so the comparison takes the same time whatever the lengths.
func requireBearer(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			httpx.WriteError(w, r, http.StatusUnauthorized, "unauthenticated", "/metrics requires Authorization: Bearer with the METRICS_TOKEN")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// startPprof serves Go's profiler on PPROF_ADDR, a listener of its own, so profiles never
// share the public port (and its proxy) with the API. net/http/pprof also registers itself on
// http.DefaultServeMux when imported; no server of ours uses that mux.
func (m *Main) startPprof(ctx context.Context) error {
	if m.cfg.PprofAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", m.cfg.PprofAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (PPROF_ADDR): %w", m.cfg.PprofAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also serves heap, goroutine, allocs, block, mutex
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No WriteTimeout: a CPU profile or trace streams for as many seconds as asked.
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
	}
	m.pprofLn = ln
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.logger.Error("pprof listener stopped", "err", err)
		}
	}()
	// Profiles in progress are cut at once: they are diagnostics, not requests to drain.
	m.closers = append(m.closers, func(context.Context) error { return srv.Close() })
	if loopbackListener(ln) {
		m.logger.InfoContext(ctx, "pprof listening", "addr", ln.Addr().String())
	} else {
		m.logger.WarnContext(ctx, "pprof listening on a non-loopback address (PPROF_ALLOW_REMOTE): it has no authentication", "addr", ln.Addr().String())
	}
	return nil
}

// PprofAddr is where the profiler listens, once Run has returned; "" when PPROF_ADDR is unset.
func (m *Main) PprofAddr() string {
	if m.pprofLn == nil {
		return ""
	}
	return m.pprofLn.Addr().String()
}

func loopbackListener(ln net.Listener) bool {
	a, ok := ln.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}
