// Package httpx holds the HTTP middleware every FluxCode request passes through: request ids
// (and a slog handler that puts them in every log line), the client address behind trusted
// proxies, access logs, panic recovery and Prometheus metrics.
package httpx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
)

// HeaderRequestID carries the request id in requests and responses.
const HeaderRequestID = "X-Request-Id"

type ctxKey int

const (
	requestIDKey ctxKey = iota
	clientIPKey
)

// requestID is the id of one request. A handler that owns a better id (the gateway's, which
// is its ledger row's key and never the client's) renames the request with Rename; every
// later reader (logs, the access line, the error bodies) then sees that one id.
type requestID struct{ id string }

// RequestID returns the request id stored in ctx, or "".
func RequestID(ctx context.Context) string {
	if v, _ := ctx.Value(requestIDKey).(*requestID); v != nil {
		return v.id
	}
	return ""
}

// WithRequestID returns ctx carrying id, for work started outside an HTTP request.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, &requestID{id: id})
}

// Rename makes id the request's id from now on, for everything that reads it from the
// request context, and in the X-Request-Id answer header. The incoming id (a proxy's) is
// returned, so the handler can log the two together once. Call it before the handler starts
// goroutines that read the id.
func Rename(ctx context.Context, w http.ResponseWriter, id string) (previous string) {
	v, _ := ctx.Value(requestIDKey).(*requestID)
	if v == nil {
		return ""
	}
	previous, v.id = v.id, id
	w.Header().Set(HeaderRequestID, id)
	return previous
}

// NewRequestID returns a fresh random id: 32 hex characters.
func NewRequestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// saneRequestID accepts an incoming id only when it is short and made of characters that
// cannot forge log lines or headers: letters, digits and - _ . :
func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// WithRequestIDs gives every request an id: the incoming X-Request-Id when it is sane (so a
// proxy's id follows the request), else a new one. The id is in the request context, in the
// request's own header (for handlers that read headers) and in the response header.
func WithRequestIDs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if !saneRequestID(id) {
			id = NewRequestID()
			r.Header.Set(HeaderRequestID, id)
		}
		w.Header().Set(HeaderRequestID, id)
		next.ServeHTTP(w, r.WithContext(WithRequestID(r.Context(), id)))
	})
}

// LogHandler wraps a slog.Handler so that every record logged with a request's context
// carries its request_id. Loggers must use the *Context methods (InfoContext) for this.
type LogHandler struct {
	slog.Handler
}

// NewLogHandler wraps h.
func NewLogHandler(h slog.Handler) *LogHandler { return &LogHandler{Handler: h} }

// Handle adds request_id from ctx, when there is one.
func (h *LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the wrapper around the derived handler.
func (h *LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &LogHandler{Handler: h.Handler.WithAttrs(attrs)}
}

// WithGroup keeps the wrapper around the derived handler.
func (h *LogHandler) WithGroup(name string) slog.Handler {
	return &LogHandler{Handler: h.Handler.WithGroup(name)}
}
