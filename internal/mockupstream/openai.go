package mockupstream

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// openaiAPI is the OpenAI dialect: Bearer keys, {"error":{...}} bodies,
// x-ratelimit-* headers. It reports no cache writes.
var openaiAPI = &dialect{
	key: bearer,
	noKey: func() (int, string, string) {
		return http.StatusUnauthorized, "invalid_request_error",
			"You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth."
	},
	errorType:  openaiErrorType,
	writeError: writeOpenAIError,
	writeScripted: func(w http.ResponseWriter, f *Failure, now time.Time, reqID string) {
		typ, msg := openaiScripted(w.Header(), f, now)
		writeOpenAIError(w, f.Status, typ, msg, reqID)
	},
	invalidKey: "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
}

// DefaultOpenAIModels are listed by the OpenAI GET /v1/models when Options.OpenAIModels is
// empty.
var DefaultOpenAIModels = []Model{
	{ID: "gpt-6.1-sol", CreatedAt: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)},
	{ID: "gpt-6-sol", CreatedAt: time.Date(2026, 9, 3, 0, 0, 0, 0, time.UTC)},
	{ID: "gpt-6-luna", CreatedAt: time.Date(2026, 9, 3, 0, 0, 0, 0, time.UTC)},
}

var evDone = []byte("data: [DONE]\n\n")

const (
	endpointChat      = "chat_completions"
	endpointResponses = "responses"
)

// isAnthropicRequest tells the two providers' GET /v1/models apart: only Anthropic
// clients send x-api-key or anthropic-version.
func isAnthropicRequest(r *http.Request) bool {
	return r.Header.Get("X-Api-Key") != "" || r.Header.Get("Anthropic-Version") != ""
}

func (s *Server) serveOpenAI(w http.ResponseWriter, r *http.Request, n uint64, reqID, endpoint string) {
	w.Header().Set("x-request-id", reqID)
	method := http.MethodPost
	if endpoint == endpointModels {
		method = http.MethodGet
	}
	// Codex tries a WebSocket first and falls back to HTTP at once on 426.
	if endpoint == endpointResponses && strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		writeOpenAIError(w, http.StatusUpgradeRequired, "invalid_request_error", "WebSocket is not supported; use HTTP", reqID)
		return
	}
	s.serveAPI(w, r, n, reqID, openaiAPI, endpoint, method, func(e *exchange, body []byte) {
		if endpoint == endpointModels {
			e.openaiModels()
			return
		}
		req, err := parseOpenAIRequest(body, endpoint)
		if err != nil {
			e.badRequest(err.Error())
			return
		}
		e.generate(body, req.genRequest, func(pc *pacer, p plan) {
			o := &openaiAnswer{id: s.newID("", n), model: req.model, created: s.opts.Now().Unix(),
				n: p.events, u: p.usage, includeUsage: req.includeUsage}
			bp := getBuf()
			o.buf = (*bp)[:0]
			switch {
			case endpoint == endpointChat && req.stream:
				e.stream(pc, p, &chatStream{o}, "text/event-stream; charset=utf-8")
			case endpoint == endpointChat:
				e.answerJSON(pc, p, o.appendChatCompletion)
			case req.stream:
				e.stream(pc, p, &responsesStream{o}, "text/event-stream; charset=utf-8")
			default:
				e.answerJSON(pc, p, o.appendResponse)
			}
			*bp = o.buf[:0]
			putBuf(bp)
		})
	})
}

type openaiRequest struct {
	genRequest
	includeUsage bool // chat: stream_options.include_usage
}

// parseOpenAIRequest validates a chat completions or responses body and collects
// directives from `user`, `metadata.user_id`, `instructions` and system/developer
// messages.
func parseOpenAIRequest(body []byte, endpoint string) (openaiRequest, error) {
	var req openaiRequest
	if !gjson.ValidBytes(body) {
		return req, errors.New("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return req, errors.New("Invalid type for request body: expected an object")
	}
	var hasMessages bool
	var err error
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			if v.Type != gjson.String {
				err = errors.New("Invalid type for 'model': expected a string")
			}
			req.model = v.Str
		case "messages":
			hasMessages = true
			if endpoint != endpointChat {
				break
			}
			if !v.IsArray() {
				err = errors.New("Invalid type for 'messages': expected an array")
			}
			v.ForEach(func(_, m gjson.Result) bool {
				if role := m.Get("role").Str; role == "system" || role == "developer" {
					req.directives = textDirectives(req.directives, m.Get("content"))
				}
				return true
			})
		case "input":
			v.ForEach(func(_, m gjson.Result) bool {
				if role := m.Get("role").Str; role == "system" || role == "developer" {
					req.directives = textDirectives(req.directives, m.Get("content"))
				}
				return true
			})
		case "instructions", "user":
			if v.Type == gjson.String {
				req.directives = findDirectives(req.directives, v.Str)
			}
		case "metadata":
			if id := v.Get("user_id"); id.Type == gjson.String {
				req.directives = findDirectives(req.directives, id.Str)
			}
		case "stream":
			if v.Type != gjson.True && v.Type != gjson.False && v.Type != gjson.Null {
				err = errors.New("Invalid type for 'stream': expected a boolean")
			}
			req.stream = v.Type == gjson.True
		case "stream_options":
			req.includeUsage = v.Get("include_usage").Type == gjson.True
		case "max_tokens", "max_completion_tokens", "max_output_tokens":
			if v.Type == gjson.Null {
				break
			}
			if v.Type != gjson.Number || v.Num != math.Trunc(v.Num) || v.Num < 1 {
				err = errors.New("Invalid '" + k.Str + "': expected an integer greater than or equal to 1")
			}
			req.maxTokens = v.Int()
		}
		return err == nil
	})
	switch {
	case err != nil:
		return req, err
	case req.model == "":
		return req, errors.New("you must provide a model parameter")
	case endpoint == endpointChat && !hasMessages:
		return req, errors.New("Missing required parameter: 'messages'.")
	}
	return req, nil
}

// openaiAnswer holds what the chat and responses renderings of one answer share.
type openaiAnswer struct {
	buf          []byte
	id, model    string
	created      int64
	n            int
	u            Usage
	includeUsage bool
	seq          int // responses: the sequence number of the next event
}

// appendChatUsage renders a chat usage object; prompt_tokens includes the cached tokens.
func appendChatUsage(b []byte, u Usage) []byte {
	prompt := u.Input + u.CacheRead
	b = append(b, `{"prompt_tokens":`...)
	b = strconv.AppendInt(b, prompt, 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, u.Output, 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, prompt+u.Output, 10)
	b = append(b, `,"prompt_tokens_details":{"cached_tokens":`...)
	b = strconv.AppendInt(b, u.CacheRead, 10)
	return append(b, `,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`...)
}

func (o *openaiAnswer) appendChatHead(b []byte, object string) []byte {
	b = append(b, `{"id":"chatcmpl-`...)
	b = append(b, o.id...)
	b = append(b, `","object":"`...)
	b = append(b, object...)
	b = append(b, `","created":`...)
	b = strconv.AppendInt(b, o.created, 10)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, o.model)
	return append(b, `,"service_tier":"default","system_fingerprint":null,"choices":[`...)
}

// appendChatCompletion renders a non-streaming chat completion.
func (o *openaiAnswer) appendChatCompletion(b []byte) []byte {
	b = o.appendChatHead(b, "chat.completion")
	b = append(b, `{"index":0,"message":{"role":"assistant","content":"`...)
	b = appendReply(b, o.n)
	b = append(b, `","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":`...)
	b = appendChatUsage(b, o.u)
	return append(b, '}')
}

// chatStream is a chat completions stream: a role chunk, n content chunks, a finish
// chunk, the usage chunk (only with include_usage, choices empty), then [DONE]. Chunks
// carry "usage":null only when include_usage asked for the usage chunk.
type chatStream struct{ *openaiAnswer }

func (c *chatStream) total() int {
	if c.includeUsage {
		return c.n + 4
	}
	return c.n + 3
}

func (c *chatStream) usageAt() int {
	if c.includeUsage {
		return c.n + 2
	}
	return -1
}

func (c *chatStream) event(i int) []byte {
	if i == c.total()-1 {
		return evDone
	}
	b := append(c.buf[:0], "data: "...)
	b = c.appendChatHead(b, "chat.completion.chunk")
	switch {
	case i == 0:
		b = append(b, `{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]`...)
	case i <= c.n:
		b = append(b, `{"index":0,"delta":{"content":`...)
		b = appendJSONString(b, replyWords[(i-1)%len(replyWords)])
		b = append(b, `},"logprobs":null,"finish_reason":null}]`...)
	case i == c.n+1:
		b = append(b, `{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]`...)
	default: // the usage chunk
		b = append(b, `],"usage":`...)
		b = appendChatUsage(b, c.u)
		c.buf = append(b, "}\n\n"...)
		return c.buf
	}
	if c.includeUsage {
		b = append(b, `,"usage":null`...)
	}
	c.buf = append(b, "}\n\n"...)
	return c.buf
}

func (c *chatStream) errorEvent(f *Failure) []byte {
	typ, msg := f.ErrorType, f.Message
	if typ == "" {
		typ = "server_error"
	}
	if msg == "" {
		msg = openaiErrorMessage(http.StatusInternalServerError, typ)
	}
	b := append(c.buf[:0], "data: "...)
	b = appendOpenAIErrorBody(b, typ, msg, openaiErrorCode(0, typ))
	c.buf = append(b, "\n\n"...)
	return c.buf
}

// appendResponsesUsage renders a responses usage object; input_tokens includes the
// cached tokens.
func appendResponsesUsage(b []byte, u Usage) []byte {
	input := u.Input + u.CacheRead
	b = append(b, `{"input_tokens":`...)
	b = strconv.AppendInt(b, input, 10)
	b = append(b, `,"input_tokens_details":{"cached_tokens":`...)
	b = strconv.AppendInt(b, u.CacheRead, 10)
	b = append(b, `},"output_tokens":`...)
	b = strconv.AppendInt(b, u.Output, 10)
	b = append(b, `,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":`...)
	b = strconv.AppendInt(b, input+u.Output, 10)
	return append(b, '}')
}

// appendOutputItem renders the assistant message item, done or just added.
func (o *openaiAnswer) appendOutputItem(b []byte, done bool) []byte {
	b = append(b, `{"id":"msg_`...)
	b = append(b, o.id...)
	if !done {
		return append(b, `","type":"message","status":"in_progress","role":"assistant","content":[]}`...)
	}
	b = append(b, `","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"`...)
	b = appendReply(b, o.n)
	return append(b, `","annotations":[]}]}`...)
}

// appendResponseObject renders the response object in the given status; a completed
// one carries the output and usage.
func (o *openaiAnswer) appendResponseObject(b []byte, status string) []byte {
	b = append(b, `{"id":"resp_`...)
	b = append(b, o.id...)
	b = append(b, `","object":"response","created_at":`...)
	b = strconv.AppendInt(b, o.created, 10)
	b = append(b, `,"status":"`...)
	b = append(b, status...)
	b = append(b, `","error":null,"incomplete_details":null,"model":`...)
	b = appendJSONString(b, o.model)
	if status != "completed" {
		return append(b, `,"output":[],"usage":null}`...)
	}
	b = append(b, `,"output":[`...)
	b = o.appendOutputItem(b, true)
	b = append(b, `],"usage":`...)
	b = appendResponsesUsage(b, o.u)
	return append(b, '}')
}

// appendResponse renders a non-streaming responses answer.
func (o *openaiAnswer) appendResponse(b []byte) []byte { return o.appendResponseObject(b, "completed") }

// responsesStream is the responses event sequence: created, in_progress,
// output_item.added, content_part.added, n output_text.delta, output_text.done,
// content_part.done, output_item.done, completed (with usage). Each event carries its
// sequence_number.
type responsesStream struct{ *openaiAnswer }

func (r *responsesStream) total() int   { return r.n + 8 }
func (r *responsesStream) usageAt() int { return r.n + 7 }

// head renders "event: <name>\ndata: {"type":"<name>","sequence_number":i".
func (r *responsesStream) head(name string, i int) []byte {
	r.seq = i + 1
	b := append(r.buf[:0], "event: "...)
	b = append(b, name...)
	b = append(b, "\ndata: {\"type\":\""...)
	b = append(b, name...)
	b = append(b, `","sequence_number":`...)
	return strconv.AppendInt(b, int64(i), 10)
}

func (r *responsesStream) partRef(b []byte) []byte {
	b = append(b, `,"item_id":"msg_`...)
	b = append(b, r.id...)
	return append(b, `","output_index":0,"content_index":0`...)
}

func (r *responsesStream) event(i int) []byte {
	var b []byte
	switch {
	case i == 0 || i == 1:
		b = r.head([...]string{"response.created", "response.in_progress"}[i], i)
		b = append(b, `,"response":`...)
		b = r.appendResponseObject(b, "in_progress")
	case i == 2:
		b = append(r.head("response.output_item.added", i), `,"output_index":0,"item":`...)
		b = r.appendOutputItem(b, false)
	case i == 3:
		b = r.partRef(r.head("response.content_part.added", i))
		b = append(b, `,"part":{"type":"output_text","text":"","annotations":[]}`...)
	case i < r.n+4:
		b = r.partRef(r.head("response.output_text.delta", i))
		b = append(b, `,"delta":`...)
		b = appendJSONString(b, replyWords[(i-4)%len(replyWords)])
	case i == r.n+4:
		b = r.partRef(r.head("response.output_text.done", i))
		b = appendReply(append(b, `,"text":"`...), r.n)
		b = append(b, '"')
	case i == r.n+5:
		b = r.partRef(r.head("response.content_part.done", i))
		b = appendReply(append(b, `,"part":{"type":"output_text","text":"`...), r.n)
		b = append(b, `","annotations":[]}`...)
	case i == r.n+6:
		b = append(r.head("response.output_item.done", i), `,"output_index":0,"item":`...)
		b = r.appendOutputItem(b, true)
	default:
		b = append(r.head("response.completed", i), `,"response":`...)
		b = r.appendResponseObject(b, "completed")
	}
	r.buf = append(b, "}\n\n"...)
	return r.buf
}

// errorEvent is response.failed, whose response.error carries the code (Codex acts on
// rate_limit_exceeded, insufficient_quota, context_length_exceeded, ...).
func (r *responsesStream) errorEvent(f *Failure) []byte {
	code, msg := f.ErrorType, f.Message
	if code == "" {
		code = "server_error"
	}
	if msg == "" {
		msg = openaiErrorMessage(http.StatusInternalServerError, code)
	}
	b := append(r.head("response.failed", r.seq), `,"response":{"id":"resp_`...)
	b = append(b, r.id...)
	b = append(b, `","object":"response","created_at":`...)
	b = strconv.AppendInt(b, r.created, 10)
	b = append(b, `,"status":"failed","model":`...)
	b = appendJSONString(b, r.model)
	b = append(b, `,"output":[],"usage":null,"error":{"code":`...)
	b = appendJSONString(b, code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, msg)
	r.buf = append(b, "}}}\n\n"...)
	return r.buf
}

// openaiModels answers GET /v1/models and GET /v1/models/{id} in OpenAI's shape.
func (e *exchange) openaiModels() {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	all := e.s.opts.OpenAIModels
	if id, ok := strings.CutPrefix(e.r.URL.Path, "/v1/models/"); ok {
		for _, m := range all {
			if m.ID == id {
				e.writeJSON(model{m.ID, "model", m.CreatedAt.Unix(), "openai"})
				return
			}
		}
		e.fail(http.StatusNotFound, "invalid_request_error", "The model '"+id+"' does not exist")
		return
	}
	list := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list", Data: []model{}}
	for _, m := range all {
		list.Data = append(list.Data, model{m.ID, "model", m.CreatedAt.Unix(), "openai"})
	}
	e.writeJSON(list)
}

func openaiErrorType(status int) string {
	switch {
	case status == 403:
		return "request_forbidden"
	case status == 429:
		return "requests"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

// openaiErrorCode is the "code" of an error body; "" renders as null.
func openaiErrorCode(status int, typ string) string {
	switch {
	case typ == "insufficient_quota":
		return "insufficient_quota"
	case status == 401:
		return "invalid_api_key"
	case status == 403:
		return "unsupported_country_region_territory"
	case status == 404:
		return "model_not_found"
	case status == 429:
		return "rate_limit_exceeded"
	}
	return ""
}

func openaiErrorMessage(status int, typ string) string {
	switch {
	case typ == "insufficient_quota":
		return "You exceeded your current quota, please check your plan and billing details."
	case status == 401:
		return "Incorrect API key provided."
	case status == 403:
		return "Country, region, or territory not supported"
	case status == 404:
		return "The model does not exist or you do not have access to it."
	case status == 503 || status == 529:
		return "The engine is currently overloaded, please try again later"
	case status >= 500:
		return "The server had an error while processing your request. Sorry about that!"
	}
	return "mock: scripted " + typ
}

func openaiScripted(h http.Header, f *Failure, now time.Time) (typ, msg string) {
	typ, msg = f.ErrorType, f.Message
	if typ == "" {
		typ = openaiErrorType(f.Status)
	}
	if f.Status != http.StatusTooManyRequests {
		if msg == "" {
			msg = openaiErrorMessage(f.Status, typ)
		}
		return typ, msg
	}
	reset, secs := resetAt(f, now)
	if msg == "" && typ != "insufficient_quota" {
		// Codex reads the delay out of this sentence
		msg = "Rate limit reached for requests. Please try again in " + strconv.FormatInt(secs, 10) + "s."
	} else if msg == "" {
		msg = openaiErrorMessage(f.Status, typ)
	}
	if !f.NoRetryAfter {
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	if f.RateLimit == RateLimitBoth || f.RateLimit == RateLimitAPI {
		left := reset.Sub(now).Round(time.Second).String()
		h.Set("x-ratelimit-limit-requests", "500")
		h.Set("x-ratelimit-remaining-requests", "0")
		h.Set("x-ratelimit-reset-requests", left)
		h.Set("x-ratelimit-limit-tokens", "200000")
		h.Set("x-ratelimit-remaining-tokens", "0")
		h.Set("x-ratelimit-reset-tokens", left)
	}
	if f.RateLimit == RateLimitBoth || f.RateLimit == RateLimitUnified {
		// ChatGPT subscription windows, as the Codex backend reports them (§2.6)
		h.Set("x-codex-primary-used-percent", "100")
		h.Set("x-codex-primary-window-minutes", "300")
		h.Set("x-codex-primary-reset-at", strconv.FormatInt(reset.Unix(), 10))
	}
	return typ, msg
}

func appendOpenAIErrorBody(b []byte, typ, msg, code string) []byte {
	b = append(b, `{"error":{"message":`...)
	b = appendJSONString(b, msg)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, typ)
	b = append(b, `,"param":null,"code":`...)
	if code == "" {
		b = append(b, "null"...)
	} else {
		b = appendJSONString(b, code)
	}
	return append(b, "}}"...)
}

// writeOpenAIError writes {"error":{"message","type","param","code"}}.
func writeOpenAIError(w http.ResponseWriter, status int, typ, msg, _ string) {
	b := appendOpenAIErrorBody(make([]byte, 0, 128+len(msg)), typ, msg, openaiErrorCode(status, typ))
	_ = writeJSONBytes(w, status, b)
}
