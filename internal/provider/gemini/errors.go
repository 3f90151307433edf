package gemini

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// Google RPC status words (google.rpc.Code names) as the API writes them in error.status.
const (
	statusInvalidArgument    = "INVALID_ARGUMENT"
	statusFailedPrecondition = "FAILED_PRECONDITION"
	statusUnauthenticated    = "UNAUTHENTICATED"
	statusPermissionDenied   = "PERMISSION_DENIED"
	statusNotFound           = "NOT_FOUND"
	statusResourceExhausted  = "RESOURCE_EXHAUSTED"
	statusInternal           = "INTERNAL"
	statusUnavailable        = "UNAVAILABLE"
	statusDeadlineExceeded   = "DEADLINE_EXCEEDED"
)

// reasonKeyInvalid is the ErrorInfo reason of the 400 the API answers for a key it does not
// accept (Google answers a bad API key with 400 INVALID_ARGUMENT, not 401).
const reasonKeyInvalid = "API_KEY_INVALID"

// statusOf is the HTTP status the gateway answers kind with on a Gemini route.
func statusOf(kind provider.ErrorKind) int {
	if kind == provider.KindAuthentication {
		return http.StatusBadRequest // as Google does for a bad key, with reasonKeyInvalid
	}
	return kind.Status()
}

// wordOf is the status word of an answer with this HTTP status.
func wordOf(kind provider.ErrorKind, status int) string {
	switch {
	case kind == provider.KindBilling && status == http.StatusPaymentRequired:
		return statusFailedPrecondition // Google has no 402; the gateway's balance refusal
	case status == http.StatusBadRequest, status == http.StatusRequestEntityTooLarge, status == http.StatusRequestTimeout:
		return statusInvalidArgument
	case status == http.StatusUnauthorized:
		return statusUnauthenticated
	case status == http.StatusForbidden:
		return statusPermissionDenied
	case status == http.StatusNotFound:
		return statusNotFound
	case status == http.StatusTooManyRequests:
		return statusResourceExhausted
	case status == http.StatusBadGateway, status == http.StatusServiceUnavailable:
		return statusUnavailable
	case status == http.StatusGatewayTimeout:
		return statusDeadlineExceeded
	case status >= 500:
		return statusInternal
	}
	return statusFailedPrecondition
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Status  string          `json:"status"`
	Details []errorInfoItem `json:"details,omitempty"`
}

// errorInfoItem is a google.rpc.ErrorInfo or google.rpc.RequestInfo detail: the reason of a
// key refusal, and the gateway's request id (the id of the ledger row and the logs).
type errorInfoItem struct {
	Type      string            `json:"@type"`
	Reason    string            `json:"reason,omitempty"`
	Domain    string            `json:"domain,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	RequestID string            `json:"requestId,omitempty"`
}

func errorJSON(kind provider.ErrorKind, status int, message, requestID string) []byte {
	d := errorDetail{Code: status, Message: message, Status: wordOf(kind, status)}
	if kind == provider.KindAuthentication && status == http.StatusBadRequest {
		d.Details = append(d.Details, errorInfoItem{Type: "type.googleapis.com/google.rpc.ErrorInfo",
			Reason: reasonKeyInvalid, Domain: "fluxcode"})
	}
	if requestID != "" {
		d.Details = append(d.Details, errorInfoItem{Type: "type.googleapis.com/google.rpc.RequestInfo", RequestID: requestID})
	}
	b, _ := json.Marshal(errorBody{Error: d})
	return b
}

// WriteError implements provider.Provider.
func (*Provider) WriteError(w http.ResponseWriter, kind provider.ErrorKind, status int, message, requestID string) {
	if status == 0 {
		status = statusOf(kind)
	}
	body := errorJSON(kind, status, message, requestID)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body) // a client that is gone cannot be told anything else
}

// ErrorEvent implements provider.Provider: the API ends a broken stream with one data chunk
// holding an error object, which the SDKs raise as the stream's error.
func (*Provider) ErrorEvent(kind provider.ErrorKind, message, requestID string) []byte {
	body := errorJSON(kind, statusOf(kind), message, requestID)
	out := make([]byte, 0, len(body)+10)
	out = append(out, "data: "...)
	out = append(out, body...)
	return append(out, "\r\n\r\n"...)
}

// PingEvent implements provider.Provider: the SSE protocol has no keep-alive the clients
// skip (the Go SDK fails on any line that is not data:, the JS SDK stops matching chunks
// after a blank event), so a waiting client is sent nothing.
func (*Provider) PingEvent() []byte { return nil }

// Classify implements provider.Provider, from the status, the status word and the
// structured details, never from words in the message (which may quote the request):
//   - a key the API refuses (400 with ErrorInfo API_KEY_INVALID, 401, 403): the gateway
//     confirms with a call of its own before the account's error state;
//   - 429 RESOURCE_EXHAUSTED: rate limited until the RetryInfo delay, or Retry-After;
//   - 503 UNAVAILABLE ("The model is overloaded"): overloaded;
//   - 408 and other 5xx: transient, another account is tried;
//   - any other 4xx is about the request and goes back to the client unchanged.
func (*Provider) Classify(status int, h http.Header, body []byte, now time.Time) provider.Failure {
	e := gjson.GetBytes(body, "error")
	f := provider.Failure{Verdict: provider.Failover, Status: status, Kind: provider.KindOfStatus(status), Message: provider.ErrorMessage(body)}
	switch {
	case status == http.StatusBadRequest && hasReason(e, reasonKeyInvalid):
		f.Kind = provider.KindAuthentication
		f.Mark = provider.Mark{Kind: provider.MarkVerify}
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		f.Mark = provider.Mark{Kind: provider.MarkVerify}
	case status == http.StatusTooManyRequests:
		f.Mark = provider.Mark{Kind: provider.MarkRateLimited, Until: retryAt(e, h, now)}
	case status == http.StatusServiceUnavailable:
		f.Mark = provider.Mark{Kind: provider.MarkOverloaded}
	case status == http.StatusRequestTimeout, status >= 500:
	default:
		f.Verdict = provider.PassThrough
	}
	return f
}

// ClassifyEvent implements provider.Provider: an error object inside a 200 stream, by its
// status word.
func (*Provider) ClassifyEvent(data []byte, now time.Time) provider.Failure {
	e := gjson.GetBytes(data, "error")
	f := provider.Failure{Verdict: provider.Failover, Kind: provider.KindAPI, Message: provider.ErrorMessage(data)}
	switch word := e.Get("status").Str; {
	case word == statusUnavailable:
		f.Kind, f.Mark = provider.KindOverloaded, provider.Mark{Kind: provider.MarkOverloaded}
	case word == statusResourceExhausted:
		f.Kind, f.Mark = provider.KindRateLimit, provider.Mark{Kind: provider.MarkRateLimited, Until: retryAt(e, nil, now)}
	case word == statusUnauthenticated, word == statusPermissionDenied, hasReason(e, reasonKeyInvalid):
		f.Kind, f.Mark = provider.KindAuthentication, provider.Mark{Kind: provider.MarkVerify}
	case word == statusInternal:
	case word == statusDeadlineExceeded:
		f.Kind = provider.KindTimeout
	default:
		f.Kind, f.Verdict = provider.KindInvalidRequest, provider.PassThrough
	}
	return f
}

// hasReason reports whether an error object carries an ErrorInfo detail with this reason.
func hasReason(e gjson.Result, reason string) bool {
	found := false
	e.Get("details").ForEach(func(_, d gjson.Result) bool {
		found = strings.HasSuffix(d.Get(`@type`).Str, "google.rpc.ErrorInfo") && d.Get("reason").Str == reason
		return !found
	})
	return found
}

// retryAt is when a rate-limited account may be used again: the RetryInfo detail's
// retryDelay ("37s", a protobuf Duration), else the Retry-After header; zero when neither
// says.
func retryAt(e gjson.Result, h http.Header, now time.Time) time.Time {
	var at time.Time
	e.Get("details").ForEach(func(_, d gjson.Result) bool {
		if !strings.HasSuffix(d.Get(`@type`).Str, "google.rpc.RetryInfo") {
			return true
		}
		if delay, err := time.ParseDuration(d.Get("retryDelay").Str); err == nil && delay > 0 {
			at = now.Add(delay)
		}
		return false
	})
	if at.IsZero() && h != nil {
		at = provider.RetryAfter(h, now)
	}
	return at
}
