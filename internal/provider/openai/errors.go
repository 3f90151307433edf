package openai

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// errorNames are the type and code of OpenAI's error body for each kind. OpenAI types most
// client errors invalid_request_error and tells them apart by code; an account out of credit
// is insufficient_quota (as both type and code).
var errorNames = map[provider.ErrorKind]struct{ typ, code string }{
	provider.KindInvalidRequest: {"invalid_request_error", ""},
	provider.KindAuthentication: {"invalid_request_error", "invalid_api_key"},
	provider.KindPermission:     {"invalid_request_error", "permission_denied"},
	provider.KindNotFound:       {"invalid_request_error", "not_found"},
	provider.KindTooLarge:       {"invalid_request_error", "request_too_large"},
	provider.KindBilling:        {"insufficient_quota", "insufficient_quota"},
	provider.KindRateLimit:      {"requests", "rate_limit_exceeded"},
	provider.KindAPI:            {"server_error", ""},
	provider.KindOverloaded:     {"server_error", "overloaded"},
	provider.KindTimeout:        {"server_error", "timeout"},
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func detailOf(kind provider.ErrorKind, message string) errorDetail {
	n, ok := errorNames[kind]
	if !ok {
		n = errorNames[provider.KindAPI]
	}
	d := errorDetail{Message: message, Type: n.typ}
	if n.code != "" {
		d.Code = &n.code
	}
	return d
}

// WriteError implements provider.Provider: {"error":{"message","type","param","code"}} with
// the kind's status (an overload is a 503, as OpenAI answers it). The request id is in the
// X-Fluxcode-Request-Id header; OpenAI's body has no place for it.
func (*Provider) WriteError(w http.ResponseWriter, kind provider.ErrorKind, status int, message, _ string) {
	if status == 0 {
		status = kind.Status()
	}
	body, _ := json.Marshal(errorBody{Error: detailOf(kind, message)})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body) // a client that is gone cannot be told anything else
}

// ErrorEvent implements provider.Provider with the Chat Completions form; the gateway asks
// RequestErrorEvent, which knows the stream's API.
func (*Provider) ErrorEvent(kind provider.ErrorKind, message, _ string) []byte {
	return chatErrorEvent(kind, message)
}

// RequestErrorEvent implements provider.RequestStreams. Each API reports a failure inside a
// stream its own way: a chat stream with a chunk {"error":{...}} (the SDKs end the stream
// with that error), a Responses stream with an "error" event {"type":"error","code",
// "message","param"}. A Responses client that never sees response.completed treats the
// answer as failed (Codex retries it).
func (*Provider) RequestErrorEvent(req provider.Request, kind provider.ErrorKind, message, _ string) []byte {
	if req.Variant == variantResponses {
		d := detailOf(kind, message)
		code := d.Type
		if d.Code != nil {
			code = *d.Code
		}
		body, _ := json.Marshal(struct {
			Type    string  `json:"type"`
			Code    string  `json:"code"`
			Message string  `json:"message"`
			Param   *string `json:"param"`
		}{"error", code, message, nil})
		return sseEvent("event: error\ndata: ", body)
	}
	return chatErrorEvent(kind, message)
}

func chatErrorEvent(kind provider.ErrorKind, message string) []byte {
	body, _ := json.Marshal(errorBody{Error: detailOf(kind, message)})
	return sseEvent("data: ", body)
}

func sseEvent(head string, data []byte) []byte {
	out := make([]byte, 0, len(head)+len(data)+2)
	out = append(out, head...)
	out = append(out, data...)
	return append(out, "\n\n"...)
}

// pingEvent is an SSE comment: every SSE parser skips it, so it fits both APIs.
var pingEvent = []byte(": ping\n\n")

// PingEvent implements provider.Provider.
func (*Provider) PingEvent() []byte { return pingEvent }

// Codes OpenAI puts in error bodies and failed responses that decide whose fault it is.
const (
	codeInsufficientQuota = "insufficient_quota"
	codeRateLimit         = "rate_limit_exceeded"
	codeInvalidKey        = "invalid_api_key"
	typeServerError       = "server_error"
	// The Codex backend's: a ChatGPT login's usage limit is reached, or its plan has no Codex.
	typeUsageLimit       = "usage_limit_reached"
	typeUsageNotIncluded = "usage_not_included"
)

// Classify implements provider.Provider. Whose fault is decided from the status and the
// structured error type and code, never from words in the message:
//   - 401/403: the credentials were refused; the gateway verifies before the error state.
//   - 429 insufficient_quota (type or code): the account is out of credit, not rate limited:
//     it is out until an admin acts (a cooldown would only bring it back to fail again).
//   - 429 usage_limit_reached (a ChatGPT login's subscription window is used up): rate
//     limited until the reset the body names; usage_not_included (the plan has no Codex):
//     out until an admin acts.
//   - any other 429: rate limited until the reset the headers name.
//   - 402 (a compatible upstream's way to say out of credit): as insufficient_quota.
//   - 408 and 5xx: transient; another account is tried. A 503 is reported as overloaded.
//   - any other 4xx is about the request itself and goes back to the client unchanged.
func (*Provider) Classify(status int, h http.Header, body []byte, now time.Time) provider.Failure {
	errType, code := gjson.GetBytes(body, "error.type").Str, gjson.GetBytes(body, "error.code").Str
	f := provider.Failure{Verdict: provider.Failover, Status: status, Kind: provider.KindOfStatus(status), Message: provider.ErrorMessage(body)}
	switch {
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		f.Mark = provider.Mark{Kind: provider.MarkVerify}
	case status == http.StatusTooManyRequests && errType == typeUsageLimit:
		f.Kind, f.Mark = provider.KindRateLimit, provider.Mark{Kind: provider.MarkRateLimited, Until: usageLimitReset(body, h, now)}
	case status == http.StatusTooManyRequests && (code == codeInsufficientQuota || errType == codeInsufficientQuota),
		errType == typeUsageNotIncluded, status == http.StatusPaymentRequired:
		f.Kind = provider.KindBilling
		f.Mark = provider.Mark{Kind: provider.MarkError}
	case status == http.StatusTooManyRequests:
		f.Mark = provider.Mark{Kind: provider.MarkRateLimited, Until: RateLimitReset(h, now)}
	case status == http.StatusRequestTimeout, status >= 500:
	default:
		f.Verdict = provider.PassThrough
	}
	return f
}

// ClassifyEvent implements provider.Provider: a failure inside a 200 stream, in any of its
// three forms (a chat {"error":{...}} chunk, a Responses "error" event, response.failed),
// by its code or type alone. A failure that names no cause is taken as the upstream's.
func (*Provider) ClassifyEvent(data []byte, now time.Time) provider.Failure {
	e := gjson.GetBytes(data, "error")
	if !e.IsObject() {
		e = gjson.GetBytes(data, "response.error")
	}
	if !e.IsObject() {
		e = gjson.ParseBytes(data) // {"type":"error","code":…,"message":…}
	}
	code, errType := e.Get("code").Str, e.Get("type").Str
	f := provider.Failure{Verdict: provider.Failover, Kind: provider.KindAPI, Message: e.Get("message").Str}
	switch {
	case code == codeInsufficientQuota || errType == codeInsufficientQuota:
		f.Kind, f.Mark = provider.KindBilling, provider.Mark{Kind: provider.MarkError}
	case code == codeRateLimit:
		f.Kind, f.Mark = provider.KindRateLimit, provider.Mark{Kind: provider.MarkRateLimited}
	case code == codeInvalidKey:
		f.Kind, f.Mark = provider.KindAuthentication, provider.Mark{Kind: provider.MarkVerify}
	case code == typeServerError || errType == typeServerError || code == "" && (errType == "" || errType == "error"):
	default:
		// Named and not the account's: context_length_exceeded, invalid_prompt, an
		// invalid_request_error… The request's own fault, relayed.
		f.Verdict, f.Kind = provider.PassThrough, provider.KindInvalidRequest
	}
	return f
}

// RateLimitReset returns when a 429'd account may be used again, from the answer's headers,
// or the zero time when they do not say. OpenAI names each bucket's reset as a duration from
// now (x-ratelimit-reset-requests: "6m0s", -tokens: "20ms"). The latest reset of an
// exhausted bucket (x-ratelimit-remaining-… 0) wins; then retry-after (seconds or an HTTP
// date); then the latest reset named at all (a request too large for what is left of a
// bucket that is not empty).
func RateLimitReset(h http.Header, now time.Time) time.Time {
	var exhausted, any time.Time
	for _, bucket := range []string{"requests", "tokens", "tokens_usage_based"} {
		d, err := time.ParseDuration(strings.TrimSpace(h.Get("X-Ratelimit-Reset-" + bucket)))
		if err != nil || d <= 0 {
			continue
		}
		t := now.Add(d)
		any = later(any, t)
		if strings.TrimSpace(h.Get("X-Ratelimit-Remaining-"+bucket)) == "0" {
			exhausted = later(exhausted, t)
		}
	}
	if !exhausted.IsZero() {
		return exhausted
	}
	if t := provider.RetryAfter(h, now); !t.IsZero() {
		return t
	}
	return any
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
