package provider

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// ErrorMessage returns the message of an upstream error body in the {"error":{"message":…}}
// form that Anthropic, OpenAI and Google all use, or a short prefix of a body in another
// shape (a proxy's HTML page), so that an account's error state says why.
func ErrorMessage(body []byte) string {
	if m := gjson.GetBytes(body, "error.message"); m.Type == gjson.String {
		return m.Str
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// RetryAfter returns the time an answer's Retry-After header names (seconds, fractions
// allowed, or an HTTP date), or the zero time when it names none in the future.
func RetryAfter(h http.Header, now time.Time) time.Time {
	v := h.Get("Retry-After")
	if v == "" {
		return time.Time{}
	}
	if sec, err := strconv.ParseFloat(v, 64); err == nil {
		if sec > 0 {
			return now.Add(time.Duration(sec * float64(time.Second)))
		}
		return time.Time{}
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t
	}
	return time.Time{}
}

// KindOfStatus reads an upstream error status into a kind, the way OpenAI and Google use
// their statuses: 503 is an overload, 408 and 504 a timeout, any other 5xx the upstream's
// error, any other 4xx the request's. (Anthropic overloads with its own 529.)
func KindOfStatus(status int) ErrorKind {
	switch {
	case status == http.StatusUnauthorized:
		return KindAuthentication
	case status == http.StatusForbidden:
		return KindPermission
	case status == http.StatusNotFound:
		return KindNotFound
	case status == http.StatusRequestEntityTooLarge:
		return KindTooLarge
	case status == http.StatusTooManyRequests:
		return KindRateLimit
	case status == http.StatusServiceUnavailable:
		return KindOverloaded
	case status == http.StatusRequestTimeout, status == http.StatusGatewayTimeout:
		return KindTimeout
	case status >= 500:
		return KindAPI
	}
	return KindInvalidRequest
}

// NewHTTPRequest builds an upstream request with body, or with none when body is nil (a nil
// slice wrapped in a reader would still count as a body of length zero).
func NewHTTPRequest(ctx context.Context, method, url string, body []byte) (*http.Request, error) {
	if body == nil {
		return http.NewRequestWithContext(ctx, method, url, nil)
	}
	return http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
}
