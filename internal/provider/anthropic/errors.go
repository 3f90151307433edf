package anthropic

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// errorTypes names each error kind the way the Messages API does in
// {"type":"error","error":{"type":…,"message":…}}; 529 is overloaded_error.
var errorTypes = map[provider.ErrorKind]string{
	provider.KindInvalidRequest: "invalid_request_error",
	provider.KindAuthentication: "authentication_error",
	provider.KindPermission:     "permission_error",
	provider.KindNotFound:       "not_found_error",
	provider.KindTooLarge:       "request_too_large",
	provider.KindBilling:        "billing_error",
	provider.KindRateLimit:      "rate_limit_error",
	provider.KindAPI:            "api_error",
	provider.KindOverloaded:     "overloaded_error",
	provider.KindTimeout:        "api_error",
}

// kindOf reads an upstream error.type back into a kind.
func kindOf(errType string, status int) provider.ErrorKind {
	for k, t := range errorTypes {
		if t == errType && k != provider.KindTimeout {
			return k
		}
	}
	switch {
	case status == http.StatusUnauthorized:
		return provider.KindAuthentication
	case status == http.StatusForbidden:
		return provider.KindPermission
	case status == http.StatusNotFound:
		return provider.KindNotFound
	case status == http.StatusRequestEntityTooLarge:
		return provider.KindTooLarge
	case status == http.StatusTooManyRequests:
		return provider.KindRateLimit
	case status == 529:
		return provider.KindOverloaded
	case status >= 500:
		return provider.KindAPI
	}
	return provider.KindInvalidRequest
}

type errorBody struct {
	Type      string      `json:"type"`
	Error     errorDetail `json:"error"`
	RequestID string      `json:"request_id,omitempty"`
}

type errorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func errorJSON(kind provider.ErrorKind, message, requestID string) []byte {
	t, ok := errorTypes[kind]
	if !ok {
		t = "api_error"
	}
	b, _ := json.Marshal(errorBody{Type: "error", Error: errorDetail{Type: t, Message: message}, RequestID: requestID})
	return b
}

// WriteError implements provider.Provider.
func (*Provider) WriteError(w http.ResponseWriter, kind provider.ErrorKind, status int, message, requestID string) {
	if status == 0 {
		status = statusOf(kind)
	}
	body := errorJSON(kind, message, requestID)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body) // a client that is gone cannot be told anything else
}

// statusOf is the status Anthropic answers kind with: an overload is its own 529, which the
// SDKs retry like a 503.
func statusOf(kind provider.ErrorKind) int {
	if kind == provider.KindOverloaded {
		return 529
	}
	return kind.Status()
}

// ErrorEvent implements provider.Provider.
func (*Provider) ErrorEvent(kind provider.ErrorKind, message, requestID string) []byte {
	body := errorJSON(kind, message, requestID)
	out := make([]byte, 0, len(body)+24)
	out = append(out, "event: error\ndata: "...)
	out = append(out, body...)
	return append(out, "\n\n"...)
}

var pingEvent = []byte("event: ping\ndata: {\"type\": \"ping\"}\n\n")

// PingEvent implements provider.Provider.
func (*Provider) PingEvent() []byte { return pingEvent }

// creditMarker starts the message of the 400 Anthropic sends when an account's prepaid credit
// is used up ("Your credit balance is too low to access the Anthropic API. …").
const creditMarker = "Your credit balance is too low"

// Classify implements provider.Provider. Whose fault is decided from the status, the
// structured error.type and fixed message prefixes, never from words anywhere in the
// message, which may quote the client's request (an unknown anthropic-beta value comes back
// inside the 400's text):
//   - 401/403: the credentials were refused; the gateway verifies before the error state.
//   - 402, or a 400 invalid_request_error/billing_error whose message starts with
//     creditMarker: the account cannot pay.
//   - 429 (rate limited until the reset the headers name), 529 (overloaded), 408 and 5xx
//     (transient): the account's or upstream's, another account is tried.
//   - any other 4xx is about the request itself and goes back to the client unchanged.
func (*Provider) Classify(status int, h http.Header, body []byte, now time.Time) provider.Failure {
	errType := gjson.GetBytes(body, "error.type").Str
	f := provider.Failure{
		Verdict: provider.Failover,
		Status:  status,
		Kind:    kindOf(errType, status),
		Message: provider.ErrorMessage(body),
	}
	switch {
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		f.Mark = provider.Mark{Kind: provider.MarkVerify}
	case status == http.StatusPaymentRequired:
		f.Mark = provider.Mark{Kind: provider.MarkError}
	case status == http.StatusBadRequest && (errType == "invalid_request_error" || errType == "billing_error") &&
		strings.HasPrefix(f.Message, creditMarker):
		// It comes as a 400, but it is the account that cannot pay, not the request that
		// is wrong.
		f.Mark = provider.Mark{Kind: provider.MarkError}
		f.Kind = provider.KindBilling
		f.Marker = creditMarker
	case status == http.StatusTooManyRequests:
		f.Mark = provider.Mark{Kind: provider.MarkRateLimited, Until: RateLimitReset(h, now)}
	case status == 529:
		f.Mark = provider.Mark{Kind: provider.MarkOverloaded}
	case status == http.StatusRequestTimeout, status >= 500:
	default:
		f.Verdict = provider.PassThrough
	}
	return f
}

// ClassifyEvent implements provider.Provider: an error event inside a 200 stream, by its
// error.type alone.
func (*Provider) ClassifyEvent(data []byte, now time.Time) provider.Failure {
	errType := gjson.GetBytes(data, "error.type").Str
	f := provider.Failure{Verdict: provider.Failover, Kind: kindOf(errType, 0), Message: provider.ErrorMessage(data)}
	switch f.Kind {
	case provider.KindOverloaded:
		f.Mark = provider.Mark{Kind: provider.MarkOverloaded}
	case provider.KindRateLimit:
		f.Mark = provider.Mark{Kind: provider.MarkRateLimited}
	case provider.KindAuthentication, provider.KindPermission:
		f.Mark = provider.Mark{Kind: provider.MarkVerify}
	case provider.KindBilling:
		f.Mark = provider.Mark{Kind: provider.MarkError}
	case provider.KindAPI, provider.KindTimeout:
	default:
		f.Verdict = provider.PassThrough
	}
	return f
}

// RateLimitReset returns when a 429'd account may be used again, from the answer's headers,
// or the zero time when they do not say. A subscription account's unified reset (epoch
// seconds) wins, then retry-after (seconds or an HTTP date), then the latest reset (RFC 3339)
// of the API-key buckets that are exhausted (anthropic-ratelimit-{requests,tokens,
// input-tokens,output-tokens}-remaining 0). Resets in the past are ignored. Reading only the
// unified header would give API-key accounts the default cooldown whatever their reset.
func RateLimitReset(h http.Header, now time.Time) time.Time {
	if v := h.Get("Anthropic-Ratelimit-Unified-Reset"); v != "" {
		if sec, err := strconv.ParseFloat(v, 64); err == nil {
			if t := time.Unix(int64(sec), 0); t.After(now) {
				return t
			}
		}
	}
	if v := h.Get("Retry-After"); v != "" {
		if sec, err := strconv.ParseFloat(v, 64); err == nil && sec > 0 {
			return now.Add(time.Duration(sec * float64(time.Second)))
		}
		if t, err := http.ParseTime(v); err == nil && t.After(now) {
			return t
		}
	}
	var latest time.Time
	for _, bucket := range []string{"requests", "tokens", "input-tokens", "output-tokens"} {
		prefix := "Anthropic-Ratelimit-" + bucket
		if strings.TrimSpace(h.Get(prefix+"-Remaining")) != "0" {
			continue
		}
		t, err := time.Parse(time.RFC3339, h.Get(prefix+"-Reset"))
		if err == nil && t.After(now) && t.After(latest) {
			latest = t
		}
	}
	return latest
}
