package httpx

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// recorder notes the status and size of a response. It passes Flush and Hijack through and
// unwraps for http.ResponseController, so streaming handlers work behind it.
type recorder struct {
	http.ResponseWriter
	status int // 0 until the final (non-1xx) header is written
	bytes  int64
}

// recorderFor reuses the recorder an outer middleware installed, so a request pays for one.
func recorderFor(w http.ResponseWriter) *recorder {
	if r, ok := w.(*recorder); ok {
		return r
	}
	return &recorder{ResponseWriter: w}
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Flush forwards to the underlying writer; a response that is flushed has started.
func (r *recorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// Hijack forwards to the underlying writer.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// statusOrOK is the status to report: a handler that wrote nothing answered 200.
func (r *recorder) statusOrOK() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// quietPaths are probed every few seconds by load balancers and scrapers; logging them at
// info would drown everything else.
var quietPaths = map[string]bool{"/health": true, "/metrics": true}

// AccessLog writes one line per request after it ends: method, path (never the query, which
// can carry a Gemini API key), route, status, bytes, duration, client address. The request
// id is added by LogHandler. 5xx answers log at warn; /health and /metrics at debug.
func AccessLog(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := recorderFor(w)
			next.ServeHTTP(rec, r)
			status := rec.statusOrOK()
			level := slog.LevelInfo
			switch {
			case status >= 500:
				level = slog.LevelWarn
			case quietPaths[r.URL.Path]:
				level = slog.LevelDebug
			}
			ctx := r.Context()
			if !logger.Enabled(ctx, level) {
				return
			}
			logger.LogAttrs(ctx, level, "http request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("route", r.Pattern),
				slog.Int("status", status),
				slog.Int64("bytes", rec.bytes),
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
				slog.String("client_ip", ClientIP(ctx).String()),
			)
		})
	}
}

// Recover turns a handler panic into a logged error with its stack and, when nothing was
// sent yet, a 500 answer. http.ErrAbortHandler, the sanctioned way to abort a broken
// stream, is passed on untouched.
func Recover(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := recorderFor(w)
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				logger.ErrorContext(r.Context(), "handler panic", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if rec.status != 0 {
					panic(http.ErrAbortHandler) // headers are out: the only honest end is to cut the connection
				}
				WriteError(rec, r, http.StatusInternalServerError, "internal", "internal error")
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

// Metrics counts HTTP requests for Prometheus.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

// NewMetrics registers the HTTP metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fluxcode_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fluxcode_http_request_duration_seconds",
			Help: "Time from request to the end of the response (streams included), by route pattern.",
			// Up to 10 minutes: a long SSE answer is one request.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"route", "method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fluxcode_http_requests_in_flight",
			Help: "HTTP requests being served now.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register http metrics: %w", err)
		}
	}
	return m, nil
}

// Middleware measures each request. It must sit directly around the ServeMux: the route label
// is the pattern the mux matched (Request.Pattern), or "unmatched".
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := recorderFor(w)
		m.inFlight.Inc()
		defer func() {
			m.inFlight.Dec()
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			method := methodLabel(r.Method)
			m.requests.WithLabelValues(route, method, strconv.Itoa(rec.statusOrOK())).Inc()
			m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(rec, r)
	})
}

// methodLabel bounds the label's values: clients can send any method string.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}
