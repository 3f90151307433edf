// Package provider declares what the gateway needs to know about one upstream protocol
// (Anthropic Messages, OpenAI, Gemini): how to read a client's request, how to build the
// upstream request for an account, how to meter usage from responses, how to tell whose
// fault an upstream error is, and how to write errors in the client's own format.
//
// Each protocol lives in its own package (provider/anthropic, later provider/openai and
// provider/gemini) and implements Provider. The gateway's request path is the same for all.
package provider

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/billing"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Operation is one gateway route of a protocol.
type Operation int

const (
	OpMessages    Operation = iota // create a response (JSON or stream); billed
	OpCountTokens                  // count input tokens; not billed
	OpModels                       // list models
	OpNotFound                     // a path under the provider's prefix that no route serves
	// OpWebSocket is a path clients first try to open as a WebSocket (Codex on /v1/responses).
	// The gateway answers 426 Upgrade Required, on which such a client falls back to plain
	// HTTP at once (a 404 makes Codex retry for seconds first).
	OpWebSocket
)

func (o Operation) String() string {
	switch o {
	case OpMessages:
		return "messages"
	case OpCountTokens:
		return "count_tokens"
	case OpModels:
		return "models"
	case OpNotFound:
		return "not_found"
	case OpWebSocket:
		return "websocket"
	}
	return "unknown"
}

// Route is one client route of a provider: a net/http ServeMux pattern and the operation
// it serves. When several providers declare the same pattern (GET /v1/models), the gateway
// serves it once and picks the provider from the platform of the key's group.
type Route struct {
	Pattern string // "POST /v1/messages"; a pattern ending in "/" (no method) is a 404 subtree
	Op      Operation
	// OpOf, when set, tells the operation from the request path, and Op is not used: for a
	// pattern that serves several operations. Gemini names the method after the model in
	// one path segment (models/{model}:generateContent, :countTokens), which a ServeMux
	// pattern cannot match on.
	OpOf func(path string) Operation
}

// KeyPlace is one place a provider's clients put their FluxCode API key. Exactly one of
// Header and Query is set.
type KeyPlace struct {
	Header string // a request header ("X-Api-Key", "Authorization")
	// Scheme, when set, is the word before the key in the header's value ("Bearer").
	Scheme string
	Query  string // a query parameter ("key", Gemini's ?key=)
}

// Inbound is what a provider sees of the client's request besides its body: the headers,
// the path (Gemini names the model and the stream choice there) and the raw query, with
// every key place already removed, so that no provider can forward the client's key.
type Inbound struct {
	Header   http.Header
	Path     string
	RawQuery string
}

// Usage is what one response consumed, in the buckets every price table knows: the billing
// package's type, so that what a meter reads is what is priced, with no copy between them.
// Input excludes cache reads and writes (Anthropic's convention; other protocols convert).
type Usage = billing.Tokens

// Request is what the gateway reads from a client's request body before choosing an account.
type Request struct {
	Model  string
	Stream bool
	// Session identifies a conversation for sticky scheduling, already hashed to a short
	// fixed-size string; empty means the request carries nothing to stick on.
	Session string
	// Continues is true when Session names a stored upstream answer the request continues
	// (OpenAI's previous_response_id): the upstream keeps it with one account alone, so its
	// binding lives as long as answers are bound (see Continuations), not a conversation's.
	Continues bool
	// Variant is the provider's own note on the wire format of the request, for a provider
	// that serves several under one operation (OpenAI's chat completions and responses, and
	// whether the client asked for the usage its stream must carry). The gateway reads
	// nothing in it; it hands the Request back to the provider's RequestStreams.
	Variant string
}

// Target is the account and upstream model one attempt is sent to.
type Target struct {
	Account *store.Account
	Model   string // the upstream model after the account's mapping
	// Rewrite is true when Model differs from the client's and the body must be patched.
	Rewrite bool
}

// Verdict says what the gateway does with a non-success upstream answer.
type Verdict int

const (
	// PassThrough: the client's own fault (a 400, a 404): relay the upstream answer as is,
	// no failover, no mark on the account.
	PassThrough Verdict = iota
	// Failover: the account's fault or a transient upstream problem: try another account
	// while nothing has reached the client, and apply Mark.
	Failover
)

// Failure is a provider's reading of one upstream error answer.
type Failure struct {
	Verdict Verdict
	Status  int       // the upstream HTTP status (0 for a transport error)
	Kind    ErrorKind // how the error is reported to the client if no account is left
	Message string    // the upstream's error message, as received (clean it before storing)
	Mark    Mark      // what to record on the account
	// Marker is the fixed upstream text a classification rests on beyond status and error
	// type ("Your credit balance is too low"), or "". An upstream quotes parts of a request
	// back in its errors, so when the client's own request contains the marker the gateway
	// does not trust it: the answer is treated as about the request (passed through, no mark).
	Marker string
	// RetryAfter is the answer's retry-after header as sent, set by the gateway: a 429 or
	// 529 reported to the client keeps it.
	RetryAfter string
}

// MarkKind is the health state an upstream answer puts an account in.
type MarkKind int

const (
	MarkNone        MarkKind = iota
	MarkRateLimited          // until Until (from the answer's headers) or the default cooldown
	MarkOverloaded           // for the overload cooldown
	MarkError                // an error status (no credentials, no credit): out until an admin acts
	// MarkVerify: the upstream refused the account's credentials (401/403). One request can
	// draw that for reasons of its own (a beta or model the organization may not use), so the
	// gateway confirms with one cheap call of its own before the account goes to MarkError.
	MarkVerify
)

// Mark is a requested account health change. Until is zero when the answer did not say.
type Mark struct {
	Kind  MarkKind
	Until time.Time
}

// ErrorKind is a protocol-neutral error class. Each provider renders it in its own format.
type ErrorKind string

const (
	KindInvalidRequest ErrorKind = "invalid_request"
	KindAuthentication ErrorKind = "authentication"
	KindPermission     ErrorKind = "permission"
	KindNotFound       ErrorKind = "not_found"
	KindTooLarge       ErrorKind = "request_too_large"
	KindBilling        ErrorKind = "billing"
	KindRateLimit      ErrorKind = "rate_limit"
	KindAPI            ErrorKind = "api"
	KindOverloaded     ErrorKind = "overloaded"
	KindTimeout        ErrorKind = "timeout"
)

// Status is the HTTP status the gateway answers with for k.
func (k ErrorKind) Status() int {
	switch k {
	case KindInvalidRequest:
		return http.StatusBadRequest
	case KindAuthentication:
		return http.StatusUnauthorized
	case KindPermission:
		return http.StatusForbidden
	case KindNotFound:
		return http.StatusNotFound
	case KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case KindBilling:
		return http.StatusPaymentRequired
	case KindRateLimit:
		return http.StatusTooManyRequests
	case KindOverloaded:
		return http.StatusServiceUnavailable // a provider with its own status says so (Anthropic's 529)
	case KindTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// Provider is one upstream protocol. Implementations are stateless and safe for concurrent use.
type Provider interface {
	// Platform is the store.Platform* value of the groups and accounts this protocol serves.
	Platform() string
	// Routes are the client routes this protocol serves, including its 404 subtrees.
	Routes() []Route
	// KeyPlaces are where its clients put the API key, in the order they are looked at.
	KeyPlaces() []KeyPlace

	// ParseRequest reads the fields the gateway needs from a client request (its path and
	// query, its body). The error message is safe to show the client (KindInvalidRequest).
	ParseRequest(op Operation, in Inbound, body []byte) (Request, error)

	// NewUpstreamRequest builds the request for one attempt: the account's URL and
	// credentials, the allowed client headers (never the client's credentials) and the body
	// with only the fields the gateway must change rewritten.
	NewUpstreamRequest(ctx context.Context, op Operation, t Target, in Inbound, body []byte) (*http.Request, error)

	// ResponseHeaders lists the upstream response headers relayed to the client.
	ResponseHeaders() []string

	// Classify reads an upstream answer whose status is not 2xx. body is at most a bounded
	// prefix of the error body. now anchors relative reset times.
	Classify(status int, h http.Header, body []byte, now time.Time) Failure
	// ClassifyEvent reads an error event received inside a 200 stream (data is the event's
	// data payload).
	ClassifyEvent(data []byte, now time.Time) Failure

	// NewMeter returns a fresh meter for one streamed response.
	NewMeter() Meter
	// JSONUsage reads the usage of a complete non-streamed response body.
	JSONUsage(body []byte) Usage

	// WriteModels answers a model list request with these model ids, in this protocol's shape.
	WriteModels(w http.ResponseWriter, ids []string)
	// WriteError answers the client with an error in this protocol's format; status 0 means
	// the protocol's status for kind.
	WriteError(w http.ResponseWriter, kind ErrorKind, status int, message, requestID string)
	// ErrorEvent is one complete stream event that reports an error, for failures after the
	// stream has started.
	ErrorEvent(kind ErrorKind, message, requestID string) []byte
	// PingEvent is one complete keep-alive stream event, sent while a request waits for a slot;
	// nil when the protocol has none that its clients ignore (Gemini's SDKs read every
	// event as a response), and the client then waits without one.
	PingEvent() []byte
}

// RequestStreams is implemented by a provider whose streams depend on the request beyond its
// operation (see Request.Variant). The gateway then uses these methods in place of NewMeter
// and ErrorEvent.
type RequestStreams interface {
	// NewRequestMeter returns a fresh meter for the stream answering req. It may implement
	// Filter.
	NewRequestMeter(req Request) Meter
	// RequestErrorEvent is ErrorEvent for the stream answering req.
	RequestErrorEvent(req Request, kind ErrorKind, message, requestID string) []byte
}

// ArrayStreams is implemented by a provider whose streams may come as one JSON array whose
// elements are sent as they are made (Gemini's streamGenerateContent without alt=sse). The
// gateway relays such an answer like a JSON answer of unknown length; when the upstream
// breaks off, it completes the array with one error element if what the client has so far
// ends between two elements (the way the provider itself ends a failed array stream), and
// cuts the connection otherwise.
type ArrayStreams interface {
	// NewArrayEnd returns a tracker for the answer to req, or nil when that answer is not
	// an array stream.
	NewArrayEnd(req Request) ArrayEnd
}

// ArrayEnd follows the bytes of one array stream as they are relayed.
type ArrayEnd interface {
	// Add reads the next bytes of the answer, in the order they arrived.
	Add(p []byte)
	// ErrorEnd returns the bytes that complete what was read into a valid array whose last
	// element reports the error in the provider's shape, or nil when what was read does not
	// end between two elements (mid-element, before the array opened, after it closed).
	// After the upstream's own error element it only closes the array: never a second one.
	ErrorEnd(kind ErrorKind, message, requestID string) []byte
	// Failed reports whether an element read so far is the upstream's report of an error:
	// the answer is then billed as partial, like a stream with an error event.
	Failed() bool
	// ErrorElement returns that element once it has been read whole, else nil: the gateway
	// reads it with ClassifyEvent and marks the account as for a stream's error event.
	ErrorElement() []byte
}

// Filter is implemented by a Meter that keeps some upstream events from the client: events
// the provider asked the upstream for on the gateway's behalf (OpenAI's usage chunk when
// the client did not ask for it). They are metered like any other, never relayed.
type Filter interface {
	// Hidden reports whether the event last passed to Event is kept from the client.
	Hidden() bool
}

// AnswerAdapter is implemented by a provider whose upstream answers some accounts in
// another shape than its clients read (Gemini's Google logins, served by Code Assist, which
// wraps every response in an envelope). The gateway hands it every 2xx answer before
// reading a byte of it.
type AnswerAdapter interface {
	// AdaptAnswer returns what the gateway reads in place of body, having set resp's
	// Content-Type header and ContentLength (-1: unknown) to match; body itself when the
	// answer is already in the client's shape. A read error of body must come out of the
	// returned reader too, after the last complete part, so that a broken answer still
	// looks broken.
	AdaptAnswer(op Operation, t Target, req Request, resp *http.Response, body io.Reader) io.Reader
}

// ModelWriter is implemented by a provider with a route that describes one model, named in
// the path (Gemini's GET /v1beta/models/{model}): the gateway answers it from the group's
// models the way it answers a list (Request.Model names the model).
type ModelWriter interface {
	WriteModel(w http.ResponseWriter, id string)
}

// AccountFilter is implemented by a provider some of whose accounts cannot serve some
// requests at all (OpenAI's ChatGPT logins speak only the Responses API). The gateway leaves
// such accounts out of scheduling; when that leaves none, the request is refused with the
// reason (400: no retry can cure it).
type AccountFilter interface {
	// Unserved returns why acct cannot serve req of op, or "" when it can.
	Unserved(acct *store.Account, op Operation, req Request) string
}

// WindowReader is implemented by a provider whose subscription accounts report their usage
// windows in response headers (Anthropic's anthropic-ratelimit-unified-*). ok is false when
// the headers carry none.
type WindowReader interface {
	Windows(h http.Header, now time.Time) (w store.UsageWindows, ok bool)
}

// Meter extracts usage from a stream's events as they pass. It sees each event once, in
// order; it must be cheap for events that carry no usage.
type Meter interface {
	// Event reads one event: name is its "event:" field (may be empty), data the joined
	// "data:" lines. It reports whether the event is an error event.
	Event(name, data []byte) (isError bool)
	// Usage is what the events seen so far consumed.
	Usage() Usage
	// Complete reports whether the stream's normal end (e.g. message_stop) was seen.
	Complete() bool
}

// Continuations is implemented by a provider whose upstream keeps answers, per account, for
// a later request to continue (OpenAI stores responses; previous_response_id continues one).
// The gateway binds the session such a later request carries (Request.Session, Continues)
// to the account that gave the answer, in the sticky map every node reads.
type Continuations interface {
	// AnswerSession returns that session for a complete non-streamed answer to req; "" when
	// no request can continue it.
	AnswerSession(req Request, body []byte) string
}

// SessionMeter is a Meter that reads the same session from a complete stream's events.
type SessionMeter interface {
	Meter
	AnswerSession() string
}

// KeyOf returns the API key a request carries in the first of places that holds one, or "".
func KeyOf(places []KeyPlace, h http.Header, query func(string) string) string {
	key, _ := FindKey(places, h, query)
	return key
}

// FindKey is KeyOf that also returns the place the key was found in (the zero KeyPlace when
// none holds one).
func FindKey(places []KeyPlace, h http.Header, query func(string) string) (string, KeyPlace) {
	for _, p := range places {
		var v string
		if p.Query != "" {
			v = query(p.Query)
		} else {
			v = h.Get(p.Header)
		}
		v = strings.TrimSpace(v)
		if p.Scheme != "" {
			scheme, token, ok := strings.Cut(v, " ")
			if !ok || !strings.EqualFold(scheme, p.Scheme) {
				continue
			}
			v = strings.TrimSpace(token)
		}
		if v != "" {
			return v, p
		}
	}
	return "", KeyPlace{}
}

// WithoutKeys returns the raw query with every parameter of a query key place removed, the
// other parameters as they came (order and escaping kept).
func WithoutKeys(places []KeyPlace, rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	drop := func(name string) bool {
		for _, p := range places {
			if p.Query != "" && p.Query == name {
				return true
			}
		}
		return false
	}
	var out strings.Builder
	for part := range strings.SplitSeq(rawQuery, "&") {
		name, _, _ := strings.Cut(part, "=")
		if un, err := url.QueryUnescape(name); err == nil {
			name = un
		}
		if drop(name) {
			continue
		}
		if out.Len() > 0 {
			out.WriteByte('&')
		}
		out.WriteString(part)
	}
	return out.String()
}
