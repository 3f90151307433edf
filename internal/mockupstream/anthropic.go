package mockupstream

import (
	"cmp"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// anthropicAPI is the Messages API dialect.
var anthropicAPI = &dialect{
	key: anthropicKey,
	noKey: func() (int, string, string) {
		return http.StatusUnauthorized, "authentication_error", "x-api-key header is required"
	},
	errorType:  anthropicErrorType,
	writeError: writeAnthropicError,
	writeScripted: func(w http.ResponseWriter, f *Failure, now time.Time, reqID string) {
		typ, msg := anthropicScripted(w.Header(), f, now)
		writeAnthropicError(w, f.Status, typ, msg, reqID)
	},
	cacheWrites: true,
	invalidKey:  "invalid x-api-key",
}

// anthropicKey is the credential the caller presents: x-api-key, else a Bearer token.
func anthropicKey(r *http.Request) string {
	if k := r.Header.Get("X-Api-Key"); k != "" {
		return k
	}
	return bearer(r)
}

func bearer(r *http.Request) string {
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

const (
	endpointMessages    = "messages"
	endpointCountTokens = "count_tokens"
	endpointModels      = "models"
)

func (s *Server) serveAnthropic(w http.ResponseWriter, r *http.Request, n uint64, reqID, endpoint, method string) {
	s.serveAPI(w, r, n, reqID, anthropicAPI, endpoint, method, func(e *exchange, body []byte) {
		if r.Header.Get("Anthropic-Version") == "" {
			e.badRequest("anthropic-version: header is required")
			return
		}
		if bad := unknownBetas(r.Header.Values("Anthropic-Beta")); len(bad) > 0 {
			// Anthropic quotes the unknown values back: client text inside its own error.
			e.badRequest("Unexpected value(s) `" + strings.Join(bad, "`, `") +
				"` for the `anthropic-beta` header. Please consult our documentation at docs.claude.com or try again without the header.")
			return
		}
		if s.oauth.expired(e.entry.Key, s.opts.Now()) {
			e.fail(http.StatusUnauthorized, "authentication_error",
				"OAuth token has expired. Please obtain a new token or refresh your existing token.")
			return
		}
		e.st.mu.Lock()
		unified := e.st.script.Unified
		e.st.mu.Unlock()
		if unified != nil {
			setUnifiedHeaders(e.w.Header(), unified, s.opts.Now())
		}
		if endpoint == endpointModels {
			e.anthropicModels()
			return
		}
		count := endpoint == endpointCountTokens
		req, err := parseAnthropicRequest(body, count)
		if err != nil {
			e.badRequest(err.Error())
			return
		}
		e.generate(body, req, func(pc *pacer, p plan) {
			model, msgID := req.model, s.newID("msg_", n)
			switch {
			case count:
				b := strconv.AppendInt([]byte(`{"input_tokens":`), p.usage.prompt(), 10)
				e.writeOK(append(b, '}'))
			case req.stream:
				bp := getBuf()
				sr := &anthropicStream{buf: (*bp)[:0], id: msgID, model: model, n: p.events, u: p.usage}
				e.stream(pc, p, sr, "text/event-stream; charset=utf-8")
				*bp = sr.buf[:0]
				putBuf(bp)
			default:
				e.answerJSON(pc, p, func(b []byte) []byte { return appendMessage(b, msgID, model, p.events, p.usage) })
			}
		})
	})
}

// unknownBetas returns the anthropic-beta values that are not beta names. The real API
// knows a fixed list that grows with every release; the mock accepts every name of the
// dated shape they all have ("interleaved-thinking-2025-05-14"), so that tomorrow's client
// still works, and refuses anything else.
func unknownBetas(values []string) []string {
	var bad []string
	for _, v := range values {
		for _, b := range strings.Split(v, ",") {
			if b = strings.TrimSpace(b); b != "" && !betaName(b) {
				bad = append(bad, b)
			}
		}
	}
	return bad
}

// betaName reports whether b has the shape name-YYYY-MM-DD or name-YYYYMMDD, in lower case.
func betaName(b string) bool {
	for i := 0; i < len(b); i++ {
		if c := b[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	date := strings.ReplaceAll(b[strings.IndexByte(b, '-')+1:], "-", "")
	if strings.IndexByte(b, '-') <= 0 || len(date) < 8 {
		return false
	}
	date = date[len(date)-8:]
	for i := 0; i < len(date); i++ {
		if date[i] < '0' || date[i] > '9' {
			return false
		}
	}
	return strings.HasPrefix(date, "20")
}

// parseAnthropicRequest validates what the Messages API requires and tolerates every
// other field; it also collects mock directives.
func parseAnthropicRequest(body []byte, count bool) (genRequest, error) {
	req := genRequest{count: count}
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
			req.stream = v.Type == gjson.True && !count
		case "metadata":
			if id := v.Get("user_id"); id.Type == gjson.String {
				req.directives = findDirectives(req.directives, id.Str)
			}
		case "system":
			req.directives = textDirectives(req.directives, v)
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
	return req, nil
}

// textDirectives collects directives from a string, or from the "text" of each block of
// an array.
func textDirectives(dst []string, v gjson.Result) []string {
	if v.Type == gjson.String {
		return findDirectives(dst, v.Str)
	}
	if v.IsArray() {
		v.ForEach(func(_, block gjson.Result) bool {
			if t := block.Get("text"); t.Type == gjson.String {
				dst = findDirectives(dst, t.Str)
			}
			return true
		})
	}
	return dst
}

func anthropicScripted(h http.Header, f *Failure, now time.Time) (typ, msg string) {
	typ, msg = f.ErrorType, f.Message
	if typ == "" {
		typ = anthropicErrorType(f.Status)
	}
	if msg == "" {
		msg = anthropicErrorMessage(typ)
	}
	if f.Status == http.StatusTooManyRequests {
		setRateLimitHeaders(h, f, now)
	}
	return typ, msg
}

// anthropicStream is the event sequence of a Messages stream: message_start,
// content_block_start, ping, n text deltas, content_block_stop, message_delta (cumulative
// usage), message_stop.
type anthropicStream struct {
	buf       []byte
	id, model string
	n         int
	u         Usage
}

func (a *anthropicStream) total() int   { return a.n + 6 }
func (a *anthropicStream) usageAt() int { return a.n + 4 }

func (a *anthropicStream) event(i int) []byte {
	switch {
	case i == 0:
		a.buf = appendMessageStart(a.buf[:0], a.id, a.model, a.u)
		return a.buf
	case i == 1:
		return evContentBlockStart
	case i == 2:
		return evPing
	case i < a.n+3:
		return deltaEvents[(i-3)%len(deltaEvents)]
	case i == a.n+3:
		return evContentBlockStop
	case i == a.n+4:
		a.buf = appendMessageDelta(a.buf[:0], a.u)
		return a.buf
	}
	return evMessageStop
}

func (a *anthropicStream) errorEvent(f *Failure) []byte {
	typ, msg := f.ErrorType, f.Message
	if typ == "" {
		typ = "overloaded_error"
	}
	if msg == "" {
		msg = anthropicErrorMessage(typ)
	}
	b := append(a.buf[:0], "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"...)
	b = appendJSONString(b, typ)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, msg)
	a.buf = append(b, "}}\n\n"...)
	return a.buf
}

// models answers GET /v1/models (a page) and GET /v1/models/{id}.
func (e *exchange) anthropicModels() {
	all := e.s.opts.Models
	if id, ok := strings.CutPrefix(e.r.URL.Path, "/v1/models/"); ok {
		for _, m := range all {
			if m.ID == id {
				e.writeJSON(anthropicModelJSON(m))
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
			e.badRequest("limit: Input should be an integer between 1 and 1000")
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
			e.badRequest("after_id: unknown model " + v)
			return
		}
	}
	var hasMore bool
	if v := q.Get("before_id"); v != "" {
		hi = index(v)
		if hi < 0 {
			e.badRequest("before_id: unknown model " + v)
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
			page.Data = append(page.Data, anthropicModelJSON(m))
		}
		page.FirstID, page.LastID = &all[lo].ID, &all[hi-1].ID
	}
	e.writeJSON(page)
}

func anthropicModelJSON(m Model) any {
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

// anthropicErrorType maps a status to Anthropic's error type.
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

// setRateLimitHeaders adds Anthropic's 429 headers (retry-after and the
// anthropic-ratelimit-* buckets), every reset at resetAt.
func setRateLimitHeaders(h http.Header, f *Failure, now time.Time) {
	reset, secs := resetAt(f, now)
	if !f.NoRetryAfter {
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
	deltaEvents         = renderDeltas()
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

// appendMessage renders a complete non-streaming answer.
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
