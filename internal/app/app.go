// Package app wires one FluxCode node together: configuration → keys → store (SQLite or
// PostgreSQL) → coordination (in-process or Redis) → first-start safety (one admin, one
// shared JWT secret) → HTTP server with the JSON API, the gateway, /health and /metrics (and,
// with PPROF_ADDR, Go's profiler on a listener of its own).
//
// Main is the whole node as a value, so tests start real nodes in-process; cmd/fluxcode is
// a thin shell around it.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/fluxcode/fluxcode/internal/api"
	"github.com/fluxcode/fluxcode/internal/auth"
	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/httpx"
	"github.com/fluxcode/fluxcode/internal/netguard"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/webui"
)

// Server limits. The header, idle and body-read timeouts and the connection limit are
// configured (SERVER_*, GATEWAY_BODY_READ_TIMEOUT). There is no WriteTimeout: an SSE answer
// may stream for many minutes.
const (
	readHeaderTimeout = 10 * time.Second // the pprof listener's
	maxHeaderBytes    = 1 << 20
	// flushTimeout bounds the final billing flush and closing the backends on Close, apart
	// from the time given to in-flight requests.
	flushTimeout = 30 * time.Second
)

// Main is one FluxCode node.
type Main struct {
	cfg      config.Config
	out      io.Writer
	logger   *slog.Logger
	nodeName string

	keys     *secret.Keys
	store    store.Store
	coord    coord.Coordinator
	tokens   *auth.Tokens
	registry *prometheus.Registry
	closers  []func(context.Context) error // run in reverse order by Close, before the backends
	gw       *gateway.Gateway              // set by mountGateway, before serving

	ln       net.Listener
	pprofLn  net.Listener
	srv      *http.Server
	inFlight sync.WaitGroup
	draining atomic.Bool
	serveErr chan error
	closed   sync.Once
	closeErr error
}

// New returns a node for cfg that logs, and prints the generated admin password (if any), to
// stdout. Nothing starts until Run.
func New(cfg config.Config, stdout io.Writer) *Main {
	out := &lockedWriter{w: stdout}
	name := cfg.NodeName
	if name == "" {
		name, _ = os.Hostname()
	}
	return &Main{cfg: cfg, out: out, logger: NewLogger(cfg, out), nodeName: name, serveErr: make(chan error, 1)}
}

// Logger is the node's logger.
func (m *Main) Logger() *slog.Logger { return m.logger }

// Store is the node's store (nil before Run).
func (m *Main) Store() store.Store { return m.store }

// Coord is the node's coordinator (nil before Run).
func (m *Main) Coord() coord.Coordinator { return m.coord }

// Addr is the address the node listens on, once Run has returned.
func (m *Main) Addr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

// Err delivers an error when the HTTP server stops by itself (not through Close).
func (m *Main) Err() <-chan error { return m.serveErr }

// Run opens everything, makes sure the first admin and the JWT secret exist, and starts
// serving. It returns once the node listens; on error everything opened is closed again.
func (m *Main) Run(ctx context.Context) (err error) {
	defer func() {
		if err != nil { // undo what was started, in reverse
			m.runClosers(context.WithoutCancel(ctx))
			m.closeBackends()
		}
	}()
	log := m.logger
	log.InfoContext(ctx, "starting fluxcode", "mode", m.cfg.Mode(), "version", Version, "commit", Commit)

	keys, generated, err := LoadKeys(m.cfg)
	if err != nil {
		return err
	}
	m.keys = keys
	if generated {
		log.WarnContext(ctx, "generated ENCRYPTION_KEY into the data directory; back it up: without it stored credentials cannot be read", "path", m.cfg.EncryptionKeyPath())
	}

	if err := secureDataDir(ctx, m.cfg, log); err != nil {
		return err
	}
	db, err := OpenStore(ctx, m.cfg, keys, log)
	if err != nil {
		return err
	}
	m.store = db
	if m.coord, err = OpenCoord(ctx, m.cfg, log); err != nil {
		return err
	}

	if _, err := EnsureAdmin(ctx, m.cfg, m.store, m.out, log); err != nil {
		return err
	}
	jwtSecret, err := JWTSecret(ctx, m.cfg, m.store, keys, log)
	if err != nil {
		return err
	}
	if m.keys, err = WithAPIKeyHashKey(ctx, m.store, keys); err != nil {
		return err
	}
	m.tokens = auth.NewTokens(jwtSecret, m.cfg.JWTTTL())

	m.registry = prometheus.NewRegistry()
	m.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	handler, err := m.handler()
	if err != nil {
		return err
	}

	if err := m.startPprof(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", m.cfg.Addr())
	if err != nil {
		return fmt.Errorf("listen on %s (SERVER_HOST, SERVER_PORT): %w", m.cfg.Addr(), err)
	}
	m.ln = httpx.LimitListener(ln, m.cfg.MaxConns, log)
	m.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: m.cfg.ReadHeaderTimeout,
		IdleTimeout:       m.cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.serveErr <- err
		}
	}()
	log.InfoContext(ctx, "listening", "addr", m.Addr())
	return nil
}

// handler assembles the routes and the middleware around them.
func (m *Main) handler() (http.Handler, error) {
	mux := http.NewServeMux()
	// The console answers every path no route serves, except the API's, the gateway's and
	// the operations paths, which keep their JSON 404 (webui.Reserved).
	mux.Handle("/", webui.Handler(http.HandlerFunc(notFound)))
	mux.HandleFunc("GET /health", m.health)
	mux.HandleFunc("GET /health/live", m.live)
	mux.Handle("GET /metrics", m.metricsHandler())
	logins, err := m.startLogins()
	if err != nil {
		return nil, err
	}
	m.startMaintenance()
	mux.Handle("/api/v1/", api.New(api.Options{
		Logins:              logins,
		Store:               m.store,
		Keys:                m.keys,
		Tokens:              m.tokens,
		Coord:               m.coord,
		Logger:              m.logger,
		Registration:        func() bool { return m.cfg.RegistrationEnabled },
		AllowUnpricedModels: m.cfg.Gateway.AllowUnpricedModels,
		Upstreams:           netguard.New(m.cfg.Gateway.AllowedNetworks),

		LoginMaxFailures:   m.cfg.LoginMaxFailuresPerEmail,
		LoginMaxPerAddress: m.cfg.LoginMaxFailuresPerAddress,
		LoginWindow:        m.cfg.LoginWindow,
		Passwords:          secret.NewPasswordGate(secret.GateOptions{Max: m.cfg.PasswordHashConcurrency}),
		AccountTester:      gatewayTester{m},
	}))
	if err := m.mountGateway(mux, logins.Refresher); err != nil {
		return nil, err
	}

	metrics, err := httpx.NewMetrics(m.registry)
	if err != nil {
		return nil, err
	}
	var h http.Handler = mux
	h = httpx.BodyReadTimeout(m.bodyReadTimeout)(h)
	h = httpx.Recover(m.logger)(h)
	h = metrics.Middleware(h)
	h = httpx.AccessLog(m.logger)(h)
	h = httpx.ClientIPs(m.cfg.TrustedProxies)(h)
	h = httpx.WithRequestIDs(h)
	h = m.track(h)
	return h, nil
}

// bodyReadTimeout is the per-read deadline of a request body: generous on the gateway
// routes (a large conversation from a slow uplink), short elsewhere (small JSON bodies).
func (m *Main) bodyReadTimeout(r *http.Request) time.Duration {
	if gatewayPath(r.URL.Path) {
		return m.cfg.GatewayBodyReadTimeout
	}
	return m.cfg.BodyReadTimeout
}

func gatewayPath(p string) bool { return p == "/v1" || strings.HasPrefix(p, "/v1/") }

// notFound answers a path no route serves, as JSON in the API's shape. Under a provider's
// prefix (/v1/) the gateway answers instead, in that provider's error shape (its SDKs parse
// it). The encoder makes any path (bytes that are not UTF-8, quotes) valid JSON.
func notFound(w http.ResponseWriter, r *http.Request) {
	httpx.WriteError(w, r, http.StatusNotFound, "not_found", "no route for "+r.Method+" "+r.URL.Path)
}

// track counts requests in flight, so Close can wait for handlers (and the billing they
// enqueue) even after it has cut their connections.
func (m *Main) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.inFlight.Add(1)
		defer m.inFlight.Done()
		next.ServeHTTP(w, r)
	})
}

// Drain is the first step of a planned stop: from now on /health and /health/live answer 503,
// so the load balancer's active check takes the node out of rotation, while the node goes on
// serving every request it gets for SERVER_DRAIN_DELAY (or until ctx ends). Those are requests
// the balancer sent before its next probe; closing the listener before that probe would make
// them fail to connect. Close comes after.
func (m *Main) Drain(ctx context.Context) {
	m.draining.Store(true)
	m.logger.InfoContext(ctx, "draining: reporting not-ready, still serving", "delay", m.cfg.DrainDelay.String())
	t := time.NewTimer(m.cfg.DrainDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Close shuts the node down gracefully: /health turns 503, the listener closes, in-flight
// requests get until ctx ends (at most SERVER_SHUTDOWN_TIMEOUT) to finish, then their
// connections are cut; the gateway flushes its billing, and the store and coordinator close.
// Safe to call more than once.
func (m *Main) Close(ctx context.Context) error {
	m.closed.Do(func() { m.closeErr = m.close(ctx) })
	return m.closeErr
}

func (m *Main) close(ctx context.Context) error {
	m.draining.Store(true)
	var errs []error
	if m.srv != nil {
		sctx, cancel := context.WithTimeout(ctx, m.cfg.ShutdownTimeout)
		err := m.srv.Shutdown(sctx)
		cancel()
		if err != nil {
			m.logger.WarnContext(ctx, "requests still running at shutdown; cutting them", "err", err)
			m.srv.Close()
		}
		// Handlers whose connection was cut still finish their bookkeeping (a partial stream
		// is billed); wait for them, boundedly, before flushing billing.
		waitBounded(&m.inFlight, flushTimeout)
	}
	errs = append(errs, m.runClosers(ctx), m.closeBackends())
	m.logger.InfoContext(ctx, "stopped")
	return errors.Join(errs...)
}

// runClosers stops what was started on top of the backends (the gateway, flushing its
// billing), newest first, within flushTimeout even when ctx has already ended.
func (m *Main) runClosers(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer cancel()
	var errs []error
	for i := len(m.closers) - 1; i >= 0; i-- {
		if err := m.closers[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	m.closers = nil
	return errors.Join(errs...)
}

// closeBackends closes the coordinator and the store, whichever were opened, once.
func (m *Main) closeBackends() error {
	var errs []error
	if m.coord != nil {
		if err := m.coord.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close coordinator: %w", err))
		}
		m.coord = nil
	}
	if m.store != nil {
		if err := m.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
		m.store = nil
	}
	return errors.Join(errs...)
}

// waitBounded waits for wg, giving up after d.
func waitBounded(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}
