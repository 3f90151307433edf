package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/store"
)

// kind classifies every error the API answers with; the client sees it as error.code.
type kind string

const (
	kindInvalid          kind = "invalid_argument"
	kindMalformedJSON    kind = "malformed_json"
	kindUnknownField     kind = "unknown_field"
	kindUnauthenticated  kind = "unauthenticated"
	kindForbidden        kind = "forbidden"
	kindNotFound         kind = "not_found"
	kindMethodNotAllowed kind = "method_not_allowed"
	kindConflict         kind = "conflict"
	kindTooLarge         kind = "too_large"
	kindUnsupportedMedia kind = "unsupported_media_type"
	kindRateLimited      kind = "rate_limited"
	kindInternal         kind = "internal"
	kindUnavailable      kind = "unavailable"
)

// statusOf is the one table from kind to HTTP status.
var statusOf = map[kind]int{
	kindInvalid:          http.StatusBadRequest,
	kindMalformedJSON:    http.StatusBadRequest,
	kindUnknownField:     http.StatusBadRequest,
	kindUnauthenticated:  http.StatusUnauthorized,
	kindForbidden:        http.StatusForbidden,
	kindNotFound:         http.StatusNotFound,
	kindMethodNotAllowed: http.StatusMethodNotAllowed,
	kindConflict:         http.StatusConflict,
	kindTooLarge:         http.StatusRequestEntityTooLarge,
	kindUnsupportedMedia: http.StatusUnsupportedMediaType,
	kindRateLimited:      http.StatusTooManyRequests,
	kindInternal:         http.StatusInternalServerError,
	kindUnavailable:      http.StatusServiceUnavailable,
}

// apiError is the one application error type. Message and Field are shown to the client;
// err is the cause, logged and never shown.
type apiError struct {
	kind       kind
	message    string
	field      string
	retryAfter time.Duration
	err        error
}

func (e *apiError) Error() string {
	s := string(e.kind) + ": " + e.message
	if e.field != "" {
		s += " (" + e.field + ")"
	}
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

func (e *apiError) Unwrap() error { return e.err }

func newError(k kind, format string, args ...any) *apiError {
	return &apiError{kind: k, message: fmt.Sprintf(format, args...)}
}

// invalid reports a bad value of one request field.
func invalid(field, format string, args ...any) *apiError {
	return &apiError{kind: kindInvalid, field: field, message: fmt.Sprintf(format, args...)}
}

// toAPIError classifies any error: store and coord sentinels get their kind, anything else is
// internal. Safe default messages keep database details out of responses.
func toAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, store.ErrNotFound):
		return &apiError{kind: kindNotFound, message: "not found", err: err}
	case errors.Is(err, store.ErrConflict):
		return &apiError{kind: kindConflict, message: "conflicts with an existing record", err: err}
	case errors.Is(err, store.ErrInvalid):
		return &apiError{kind: kindInvalid, message: "the record breaks a rule of the store", err: err}
	case errors.Is(err, coord.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &apiError{kind: kindUnavailable, message: "temporarily unavailable, retry shortly", err: err}
	default:
		return &apiError{kind: kindInternal, message: "internal error", err: err}
	}
}

type errorBody struct {
	Error     errorDetail `json:"error"`
	RequestID string      `json:"request_id,omitempty"`
}

type errorDetail struct {
	Code    kind   `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// writeError answers with the error shape and logs the error: server faults at error level
// with their cause, client faults at debug level.
func (a *api) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := toAPIError(err)
	status := statusOf[ae.kind]
	rid := requestID(r)
	level := slog.LevelDebug
	if status >= 500 {
		level = slog.LevelError
	}
	if a.log.Enabled(r.Context(), level) {
		a.log.LogAttrs(r.Context(), level, "api error",
			slog.String("request_id", rid),
			slog.Group("http", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status)),
			slog.String("code", string(ae.kind)),
			slog.String("error", ae.Error()))
	}
	if ae.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((ae.retryAfter+time.Second-1)/time.Second)))
	}
	writeJSON(w, status, errorBody{
		Error:     errorDetail{Code: ae.kind, Message: ae.message, Field: ae.field},
		RequestID: rid,
	})
}
