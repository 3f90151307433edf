package mockupstream

import (
	"cmp"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

const (
	endpointMessages    = "messages"
	endpointCountTokens = "count_tokens"
	endpointModels      = "models"
)

// exchange is one provider API request being answered.
type exchange struct {
	s     *Server
	w     http.ResponseWriter
	r     *http.Request
	st    *keyState
	n     uint64 // request number, shared by the request and message ids
	entry LogEntry
}

// anthropicKey is the credential the caller presents: x-api-key, else a Bearer token.
func anthropicKey(r *http.Request) string {
	if k := r.Header.Get("X-Api-Key"); k != "" {
		return k
	}
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

func (s *Server) serveAnthropic(w http.ResponseWriter, r *http.Request, n uint64, reqID, endpoint, method string) {
	if r.Method != method {
		writeAnthropicError(w, http.StatusMethodNotAllowed, "invalid_request_error", "Method Not Allowed", reqID)
		return
	}
	key := anthropicKey(r)
	if key == "" {
		writeAnthropicError(w, http.StatusUnauthorized, "authentication_error", "x-api-key header is required", reqID)
		return
	}
	st := s.state(key)
	st.begin()
	e := &exchange{s: s, w: w, r: r, st: st, n: n,
		entry: LogEntry{RequestID: reqID, Key: key, Endpoint: endpoint, Time: s.opts.Now()}}
	defer e.finish()

	body, err := s.readBody(w, r)
	s.recordRequest(e, body)
	if err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			e.fail(http.StatusRequestEntityTooLarge, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
			return
		}
		e.entry.Aborted = true // the peer did not finish sending
		return
	}
	if r.Header.Get("Anthropic-Version") == "" {
		e.fail(http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
		return
	}
	switch endpoint {
	case endpointModels:
		e.models()
	default:
		e.messages(body, endpoint == endpointCountTokens)
	}
}

func (s *Server) recordRequest(e *exchange, body []byte) {
	if s.opts.RecordPerKey < 0 {
		return
	}
	e.st.record(RecordedRequest{
		RequestID: e.entry.RequestID, Key: e.entry.Key, Method: e.r.Method, Path: e.r.URL.Path,
		RawQuery: e.r.URL.RawQuery, Host: e.r.Host, Header: e.r.Header.Clone(), Body: body,
		Time: e.entry.Time,
	})
}

func (e *exchange) finish() {
	e.st.end()
	if e.entry.Aborted {
		e.st.aborted.Add(1)
	}
	if e.s.opts.LogSize > 0 {
		e.s.appendLog(e.entry)
	}
}

// fail answers with an Anthropic error body.
func (e *exchange) fail(status int, typ, msg string) {
	e.entry.Status = status
	e.st.errors.Add(1)
	writeAnthropicError(e.w, status, typ, msg, e.entry.RequestID)
}

// stopped records why an answer ended early: the peer left (aborted) or the server closes.
func (e *exchange) stopped() {
	if e.r.Context().Err() != nil {
		e.entry.Aborted = true
	}
}

type anthropicRequest struct {
	model      string
	maxTokens  int64
	stream     bool
	directives []string
}

// parseAnthropicRequest validates what the Messages API requires and tolerates every
// other field (protocols.md §1.2); it also collects mock directives.
func parseAnthropicRequest(body []byte, count bool) (anthropicRequest, error) {
	var req anthropicRequest
	if !gjson.ValidBytes(body) {
		return req, errors.New("There was an error parsing the body of your request: invalid JSON")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return req, errors.New("request body: Input should be a valid dictionary")
	}
	var seen struct{ model, maxTokens, messages bool }
	var err error
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			seen.model = true
			if v.Type != gjson.String || v.Str == "" {
				err = errors.New("model: Input should be a valid string")
			}
			req.model = v.Str
		case "max_tokens":
			seen.maxTokens = true
			if v.Type != gjson.Number || v.Num != math.Trunc(v.Num) {
				err = errors.New("max_tokens: Input should be a valid integer")
			} else if req.maxTokens = v.Int(); req.maxTokens < 1 {
				err = errors.New("max_tokens: Input should be greater than or equal to 1")
			}
		case "messages":
			seen.messages = true
			if !v.IsArray() {
				err = errors.New("messages: Input should be a valid list")
			}
		case "stream":
			if v.Type != gjson.True && v.Type != gjson.False && v.Type != gjson.Null {
				err = errors.New("stream: Input should be a valid boolean")
			}
			req.stream = v.Type == gjson.True
		case "metadata":
			if id := v.Get("user_id"); id.Type == gjson.String {
				req.directives = findDirectives(req.directives, id.Str)
			}
		case "system":
			if v.Type == gjson.String {
				req.directives = findDirectives(req.directives, v.Str)
			} else if v.IsArray() {
				v.ForEach(func(_, block gjson.Result) bool {
					if t := block.Get("text"); t.Type == gjson.String {
						req.directives = findDirectives(req.directives, t.Str)
					}
					return true
				})
			}
		}
		return err == nil
	})
	switch {
	case err != nil:
		return req, err
	case !seen.model:
		return req, errors.New("model: Field required")
	case !seen.messages:
		return req, errors.New("messages: Field required")
	case !seen.maxTokens && !count:
		return req, errors.New("max_tokens: Field required")
	}
	if count {
		req.stream = false
	}
	if req.maxTokens == 0 {
		req.maxTokens = 1000
	}
	return req, nil
}

// plan fixes what this request does: the key's script, then the body's directives.
// A directive that names a failure replaces the script's failure for this request.
func (e *exchange) plan(body []byte, req anthropicRequest, count bool) (plan, error) {
	e.st.mu.Lock()
	sc := e.st.script
	e.st.mu.Unlock()
	p := plan{latency: sc.Latency, interval: sc.Interval, events: sc.events()}
	if sc.Usage != nil {
		p.usage = *sc.Usage
	} else {
		p.usage = DeriveUsage(body, sc.Seed, req.maxTokens)
	}
	for _, d := range req.directives {
		if err := applyDirective(&p, d, body, req.maxTokens); err != nil {
			return p, err
		}
	}
	applies := func(k FailKind) bool {
		switch {
		case count:
			return !k.midStream()
		case !req.stream:
			return k != FailError // a JSON answer has no place for an error event
		}
		return true
	}
	if p.fail != nil {
		if !applies(p.fail.kind()) {
			p.fail = nil
		}
		return p, nil
	}
	_, p.fail = e.st.takeFailure(applies)
	return p, nil
}

// messages answers POST /v1/messages and /v1/messages/count_tokens.
func (e *exchange) messages(body []byte, count bool) {
	req, err := parseAnthropicRequest(body, count)
	if err != nil {
		e.fail(http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	e.entry.Model, e.entry.Stream = req.model, req.stream
	p, err := e.plan(body, req, count)
	if err != nil {
		e.fail(http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	if !count {
		e.entry.Usage = p.usage
	}
	pc := pacer{ctx: e.r.Context(), done: e.s.done}
	defer pc.stop()
	if !pc.wait(p.latency) {
		e.stopped()
		return
	}
	if f := p.fail; f != nil {
		e.st.failures.Add(1)
		e.entry.Failure = f.String()
		switch f.kind() {
		case FailStatus:
			e.failStatus(f)
			return
		case FailReset:
			resetConn(e.w)
			return
		}
	}
	switch {
	case count:
		e.countTokens(p.usage.prompt())
	case req.stream:
		e.stream(&pc, req, p)
	default:
		e.json(&pc, req, p)
	}
}

func (e *exchange) failStatus(f *Failure) {
	typ, msg := f.ErrorType, f.Message
	if typ == "" {
		typ = anthropicErrorType(f.Status)
	}
	if msg == "" {
		msg = anthropicErrorMessage(typ)
	}
	if f.Status == http.StatusTooManyRequests {
		setRateLimitHeaders(e.w.Header(), f, e.s.opts.Now())
	}
	e.fail(f.Status, typ, msg)
}

func (e *exchange) countTokens(n int64) {
	b := strconv.AppendInt([]byte(`{"input_tokens":`), n, 10)
	b = append(b, '}')
	e.entry.Status = http.StatusOK
	if writeJSONBytes(e.w, http.StatusOK, b) != nil {
		e.entry.Aborted = true
		return
	}
	e.entry.Completed = true
}

// json answers a non-streaming message.
func (e *exchange) json(pc *pacer, req anthropicRequest, p plan) {
	if f := p.fail; f != nil { // stall or drop: the headers go out, the body never does
		e.w.Header().Set("Content-Type", "application/json")
		e.w.WriteHeader(http.StatusOK)
		e.entry.Status = http.StatusOK
		if flush(e.w) != nil {
			e.entry.Aborted = true
			return
		}
		if f.kind() == FailDrop {
			resetConn(e.w)
			return
		}
		pc.hold()
		e.stopped()
		return
	}
	buf := getBuf()
	defer putBuf(buf)
	*buf = appendMessage((*buf)[:0], e.s.newID("msg_", e.n), req.model, p.events, p.usage)
	e.entry.Status = http.StatusOK
	if writeJSONBytes(e.w, http.StatusOK, *buf) != nil {
		e.entry.Aborted = true
		return
	}
	e.entry.UsageReported, e.entry.Completed = true, true
	e.st.addUsage(p.usage)
}

// stream answers a streaming message with the event sequence of protocols.md §1.5:
// message_start, content_block_start, ping, N text deltas, content_block_stop,
// message_delta (cumulative usage), message_stop. Every event is flushed on its own.
func (e *exchange) stream(pc *pacer, req anthropicRequest, p plan) {
	h := e.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	e.w.WriteHeader(http.StatusOK)
	e.entry.Status = http.StatusOK
	if flush(e.w) != nil {
		e.entry.Aborted = true
		return
	}
	deltaAt := p.events + 4 // index of message_delta
	failAt := -1
	if p.fail != nil {
		failAt = min(p.fail.After, deltaAt)
	}
	buf := getBuf()
	defer putBuf(buf)
	msgID := e.s.newID("msg_", e.n)
	for i := 0; i <= deltaAt+1; i++ {
		if i > 0 && !pc.wait(p.interval) {
			e.stopped()
			return
		}
		if i == failAt {
			e.midStreamFailure(pc, p.fail)
			return
		}
		var ev []byte
		switch {
		case i == 0:
			*buf = appendMessageStart((*buf)[:0], msgID, req.model, p.usage)
			ev = *buf
		case i == 1:
			ev = evContentBlockStart
		case i == 2:
			ev = evPing
		case i < deltaAt-1:
			ev = deltaEvents[(i-3)%len(deltaEvents)]
		case i == deltaAt-1:
			ev = evContentBlockStop
		case i == deltaAt:
			*buf = appendMessageDelta((*buf)[:0], p.usage)
			ev = *buf
		default:
			ev = evMessageStop
		}
		// a peer that already left must not be credited with usage it never read
		if e.r.Context().Err() != nil {
			e.entry.Aborted = true
			return
		}
		if _, err := e.w.Write(ev); err != nil || flush(e.w) != nil {
			e.entry.Aborted = true
			return
		}
		e.entry.Events++
		switch i {
		case 0:
			e.entry.StartSent = true
		case deltaAt:
			e.entry.UsageReported = true
			e.st.addUsage(p.usage)
		}
	}
	e.entry.Completed = true
}

func (e *exchange) midStreamFailure(pc *pacer, f *Failure) {
	switch f.kind() {
	case FailError:
		typ, msg := f.ErrorType, f.Message
		if typ == "" {
			typ = "overloaded_error"
		}
		if msg == "" {
			msg = anthropicErrorMessage(typ)
		}
		b := append([]byte("event: error\ndata: "), `{"type":"error","error":{"type":`...)
		b = appendJSONString(b, typ)
		b = append(b, `,"message":`...)
		b = appendJSONString(b, msg)
		b = append(b, "}}\n\n"...)
		if _, err := e.w.Write(b); err != nil || flush(e.w) != nil {
			e.entry.Aborted = true
		}
	case FailStall:
		pc.hold()
		e.stopped()
	case FailDrop:
		resetConn(e.w)
	}
}

// models answers GET /v1/models (a page) and GET /v1/models/{id}.
func (e *exchange) models() {
	all := e.s.opts.Models
	if id, ok := strings.CutPrefix(e.r.URL.Path, "/v1/models/"); ok {
		for _, m := range all {
			if m.ID == id {
				e.writeJSON(modelJSON(m))
				return
			}
		}
		e.fail(http.StatusNotFound, "not_found_error", "model: "+id)
		return
	}
	q := e.r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			e.fail(http.StatusBadRequest, "invalid_request_error", "limit: Input should be an integer between 1 and 1000")
			return
		}
		limit = n
	}
	index := func(id string) int {
		for i, m := range all {
			if m.ID == id {
				return i
			}
		}
		return -1
	}
	lo, hi := 0, len(all) // the window [lo, hi) the page is cut from
	if v := q.Get("after_id"); v != "" {
		lo = index(v) + 1
		if lo == 0 {
			e.fail(http.StatusBadRequest, "invalid_request_error", "after_id: unknown model "+v)
			return
		}
	}
	var hasMore bool
	if v := q.Get("before_id"); v != "" {
		hi = index(v)
		if hi < 0 {
			e.fail(http.StatusBadRequest, "invalid_request_error", "before_id: unknown model "+v)
			return
		}
		// paging backwards: the page ends right before before_id
		lo = max(lo, hi-limit)
		hasMore = lo > 0
	} else {
		hasMore = hi-lo > limit
		hi = min(hi, lo+limit)
	}
	page := struct {
		Data    []any   `json:"data"`
		HasMore bool    `json:"has_more"`
		FirstID *string `json:"first_id"`
		LastID  *string `json:"last_id"`
	}{Data: []any{}, HasMore: hasMore}
	if lo < hi {
		for _, m := range all[lo:hi] {
			page.Data = append(page.Data, modelJSON(m))
		}
		page.FirstID, page.LastID = &all[lo].ID, &all[hi-1].ID
	}
	e.writeJSON(page)
}

func modelJSON(m Model) any {
	line := ""
	for _, l := range [...]string{"opus", "sonnet", "haiku", "fable", "mythos"} {
		if strings.Contains(m.ID, l) {
			line = l
		}
	}
	return struct {
		Type           string  `json:"type"`
		ID             string  `json:"id"`
		DisplayName    string  `json:"display_name"`
		CreatedAt      string  `json:"created_at"`
		Lifecycle      string  `json:"lifecycle"`
		Line           string  `json:"line,omitempty"`
		MaxInputTokens int64   `json:"max_input_tokens"`
		MaxTokens      int64   `json:"max_tokens"`
		DeprecatedAt   *string `json:"deprecated_at"`
		RetiresAt      *string `json:"retires_at"`
	}{
		Type: "model", ID: m.ID, DisplayName: m.DisplayName, CreatedAt: m.CreatedAt.UTC().Format(time.RFC3339),
		Lifecycle: "active", Line: line, MaxInputTokens: cmp.Or(m.MaxInputTokens, 200000),
		MaxTokens: cmp.Or(m.MaxTokens, 128000),
	}
}

func (e *exchange) writeJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		e.fail(http.StatusInternalServerError, "api_error", "mock: "+err.Error())
		return
	}
	e.entry.Status = http.StatusOK
	if writeJSONBytes(e.w, http.StatusOK, b) != nil {
		e.entry.Aborted = true
		return
	}
	e.entry.Completed = true
}

// writeJSONBytes writes a complete JSON answer and reports whether it reached the peer's
// connection.
func writeJSONBytes(w http.ResponseWriter, status int, b []byte) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if _, err := w.Write(b); err != nil {
		return err
	}
	return flush(w)
}

// writeAnthropicError writes {"type":"error","error":{"type","message"},"request_id"}.
func writeAnthropicError(w http.ResponseWriter, status int, typ, msg, reqID string) {
	b := append(make([]byte, 0, 128+len(msg)), `{"type":"error","error":{"type":`...)
	b = appendJSONString(b, typ)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, msg)
	b = append(b, `},"request_id":`...)
	b = appendJSONString(b, reqID)
	b = append(b, '}')
	_ = writeJSONBytes(w, status, b)
}

// anthropicErrorType maps a status to Anthropic's error type (protocols.md §1.7).
func anthropicErrorType(status int) string {
	switch status {
	case 400:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 402:
		return "billing_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

func anthropicErrorMessage(typ string) string {
	switch typ {
	case "authentication_error":
		return "invalid x-api-key"
	case "billing_error":
		return "Your credit balance is too low to access the Anthropic API."
	case "permission_error":
		return "Your API key does not have permission to use the specified resource."
	case "not_found_error":
		return "The requested resource could not be found."
	case "request_too_large":
		return "Request exceeds the maximum allowed number of bytes."
	case "rate_limit_error":
		return "This request would exceed the rate limit for your organization. Please try again later."
	case "overloaded_error":
		return "Overloaded"
	case "api_error":
		return "Internal server error"
	}
	return "mock: scripted " + typ
}

// setRateLimitHeaders adds the 429 headers of protocols.md §1.8. Every reset is now +
// RetryAfter, rounded up to a whole second.
func setRateLimitHeaders(h http.Header, f *Failure, now time.Time) {
	ra := f.RetryAfter
	if ra <= 0 {
		ra = time.Minute
	}
	reset := now.Add(ra)
	if t := reset.Truncate(time.Second); !t.Equal(reset) {
		reset = t.Add(time.Second)
	}
	if !f.NoRetryAfter {
		secs := int64((ra + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	if f.RateLimit == RateLimitBoth || f.RateLimit == RateLimitAPI {
		at := reset.UTC().Format(time.RFC3339)
		for _, fam := range [...]struct {
			name  string
			limit string
		}{{"requests", "50"}, {"tokens", "100000"}, {"input-tokens", "80000"}, {"output-tokens", "20000"}} {
			h.Set("anthropic-ratelimit-"+fam.name+"-limit", fam.limit)
			h.Set("anthropic-ratelimit-"+fam.name+"-remaining", "0")
			h.Set("anthropic-ratelimit-"+fam.name+"-reset", at)
		}
	}
	if f.RateLimit == RateLimitBoth || f.RateLimit == RateLimitUnified {
		epoch := strconv.FormatInt(reset.Unix(), 10)
		h.Set("anthropic-ratelimit-unified-status", "rejected")
		h.Set("anthropic-ratelimit-unified-reset", epoch)
		h.Set("anthropic-ratelimit-unified-representative-claim", "five_hour")
		h.Set("anthropic-ratelimit-unified-5h-status", "rejected")
		h.Set("anthropic-ratelimit-unified-5h-reset", epoch)
		h.Set("anthropic-ratelimit-unified-5h-utilization", "1.0")
	}
}

// Static parts of the stream, rendered once.
var (
	evContentBlockStart = []byte("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
	evPing              = []byte("event: ping\ndata: {\"type\":\"ping\"}\n\n")
	evContentBlockStop  = []byte("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
	evMessageStop       = []byte("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	// replyWords are the text deltas, in turn; a JSON answer's text is their concatenation.
	replyWords  = [...]string{"Hello", " from", " the", " mock", " upstream", "."}
	deltaEvents = renderDeltas()
)

func renderDeltas() [len(replyWords)][]byte {
	var out [len(replyWords)][]byte
	for i, w := range replyWords {
		b := []byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":")
		b = appendJSONString(b, w)
		out[i] = append(b, "}}\n\n"...)
	}
	return out
}

// ReplyText is the text of an answer with n text deltas: what a client accumulates.
func ReplyText(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(replyWords[i%len(replyWords)])
	}
	return b.String()
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }

// appendUsage writes the usage fields shared by message_start and the JSON answer.
func appendUsage(b []byte, u Usage, output int64) []byte {
	b = append(b, `"usage":{"input_tokens":`...)
	b = strconv.AppendInt(b, u.Input, 10)
	b = append(b, `,"cache_creation_input_tokens":`...)
	b = strconv.AppendInt(b, u.Cache5m+u.Cache1h, 10)
	b = append(b, `,"cache_read_input_tokens":`...)
	b = strconv.AppendInt(b, u.CacheRead, 10)
	b = append(b, `,"cache_creation":{"ephemeral_5m_input_tokens":`...)
	b = strconv.AppendInt(b, u.Cache5m, 10)
	b = append(b, `,"ephemeral_1h_input_tokens":`...)
	b = strconv.AppendInt(b, u.Cache1h, 10)
	b = append(b, `},"output_tokens":`...)
	b = strconv.AppendInt(b, output, 10)
	return append(b, `,"service_tier":"standard"`...)
}

func appendMessageHead(b []byte, id, model string) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"type":"message","role":"assistant","model":`...)
	return appendJSONString(b, model)
}

// appendMessage renders a complete non-streaming answer (protocols.md §1.4).
func appendMessage(b []byte, id, model string, events int, u Usage) []byte {
	b = appendMessageHead(b, id, model)
	b = append(b, `,"content":[{"type":"text","text":"`...)
	for i := range events {
		b = append(b, replyWords[i%len(replyWords)]...) // plain ASCII: no escaping needed
	}
	b = append(b, `"}],"stop_reason":"end_turn","stop_sequence":null,`...)
	b = appendUsage(b, u, u.Output)
	return append(b, `,"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"inference_geo":"not_available"}}`...)
}

// appendMessageStart renders the first event: input and cache usage, output so far ≤ 1.
func appendMessageStart(b []byte, id, model string, u Usage) []byte {
	b = append(b, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"...)
	b = appendMessageHead(b, id, model)
	b = append(b, `,"content":[],"stop_reason":null,"stop_sequence":null,`...)
	b = appendUsage(b, u, min(u.Output, 1))
	return append(b, "}}}\n\n"...)
}

// appendMessageDelta renders message_delta with the cumulative usage of the whole answer.
func appendMessageDelta(b []byte, u Usage) []byte {
	b = append(b, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":"...)
	b = strconv.AppendInt(b, u.Input, 10)
	b = append(b, `,"cache_creation_input_tokens":`...)
	b = strconv.AppendInt(b, u.Cache5m+u.Cache1h, 10)
	b = append(b, `,"cache_read_input_tokens":`...)
	b = strconv.AppendInt(b, u.CacheRead, 10)
	b = append(b, `,"output_tokens":`...)
	b = strconv.AppendInt(b, u.Output, 10)
	return append(b, "}}\n\n"...)
}

// appendJSONString appends s as a JSON string. s is valid UTF-8 (it came out of a JSON
// document or our own code), so only quotes, backslashes and control bytes need escaping.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
