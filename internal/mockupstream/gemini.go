package mockupstream

import (
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// geminiAPI is the Generative Language API dialect: keys in
// x-goog-api-key, ?key= or Bearer; Google RPC error bodies. It reports no cache writes.
var geminiAPI = &dialect{
	key: geminiKey,
	noKey: func() (int, string, string) {
		return http.StatusForbidden, "PERMISSION_DENIED",
			"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."
	},
	errorType: geminiStatusWord,
	writeError: func(w http.ResponseWriter, status int, word, msg, _ string) {
		if word == reasonKeyInvalid {
			writeGeminiScripted(w, &Failure{Status: status, ErrorType: word, Message: msg}, time.Time{}, "")
			return
		}
		writeGeminiError(w, status, word, msg, nil)
	},
	revoked:       func() (int, string) { return http.StatusBadRequest, reasonKeyInvalid },
	writeScripted: writeGeminiScripted,
	invalidKey:    "API key not valid. Please pass a valid API key.",
}

// DefaultGeminiModels are listed by GET /v1beta/models when Options.GeminiModels is empty.
var DefaultGeminiModels = []Model{
	{ID: "gemini-3.8-flash", DisplayName: "Gemini 3.8 Flash", MaxInputTokens: 1048576, MaxTokens: 65536},
	{ID: "gemini-3.5-flash-lite", DisplayName: "Gemini 3.5 Flash-Lite", MaxInputTokens: 1048576, MaxTokens: 65536},
	{ID: "gemini-3.1-pro-preview", DisplayName: "Gemini 3.1 Pro Preview", MaxInputTokens: 1048576, MaxTokens: 65536},
}

// reasonKeyInvalid is the ErrorInfo reason of the 400 Google answers for a bad API key.
const reasonKeyInvalid = "API_KEY_INVALID"

const (
	endpointGenerate       = "generate_content"
	endpointStreamGenerate = "stream_generate_content"
)

// geminiKey accepts the three ways Gemini clients authenticate.
func geminiKey(r *http.Request) string {
	if k := r.Header.Get("X-Goog-Api-Key"); k != "" {
		return k
	}
	if k := r.URL.Query().Get("key"); k != "" {
		return k
	}
	return bearer(r)
}

// serveGemini answers rest = "/models", "/models/{model}" or "/models/{model}:{method}".
func (s *Server) serveGemini(w http.ResponseWriter, r *http.Request, n uint64, reqID, rest string) {
	name, ok := strings.CutPrefix(rest, "/models/")
	if !ok {
		if rest != "/models" {
			writeGeminiError(w, http.StatusNotFound, "NOT_FOUND", "Method not found.", nil)
			return
		}
		s.serveAPI(w, r, n, reqID, geminiAPI, endpointModels, http.MethodGet, func(e *exchange, _ []byte) { e.geminiModels("") })
		return
	}
	model, method, _ := strings.Cut(name, ":")
	if m, err := url.PathUnescape(model); err == nil {
		model = m
	}
	var endpoint string
	switch method {
	case "":
		s.serveAPI(w, r, n, reqID, geminiAPI, endpointModels, http.MethodGet, func(e *exchange, _ []byte) { e.geminiModels(model) })
		return
	case "generateContent":
		endpoint = endpointGenerate
	case "streamGenerateContent":
		endpoint = endpointStreamGenerate
	case "countTokens":
		endpoint = endpointCountTokens
	default:
		writeGeminiError(w, http.StatusNotFound, "NOT_FOUND", "Method not found: "+method, nil)
		return
	}
	s.serveAPI(w, r, n, reqID, geminiAPI, endpoint, http.MethodPost, func(e *exchange, body []byte) {
		e.answerGemini(body, endpoint, model, "")
	})
}

// answerGemini answers a generate or count request for model. trace, when set, is the
// traceId of Code Assist's envelope, which then wraps every chunk ({"response":…}).
func (e *exchange) answerGemini(body []byte, endpoint, model, trace string) {
	r, s, n := e.r, e.s, e.n
	req, err := parseGeminiRequest(body, endpoint)
	if err != nil {
		e.badRequest(err.Error())
		return
	}
	req.model = model
	thinks := geminiThinks(body)
	// without alt=sse the stream method answers one JSON array of all chunks, itself
	// sent chunk by chunk
	sse := endpoint == endpointStreamGenerate && r.URL.Query().Get("alt") == "sse"
	req.stream = endpoint == endpointStreamGenerate
	e.generate(body, req, func(pc *pacer, p plan) {
		g := &geminiAnswer{id: s.newID("", n), model: model, n: p.events, u: p.usage, thinks: thinks, trace: trace}
		bp := getBuf()
		g.buf = (*bp)[:0]
		switch {
		case endpoint == endpointCountTokens:
			e.writeOK(g.appendCount(nil))
		case sse:
			e.stream(pc, p, g, "text/event-stream")
		case endpoint == endpointStreamGenerate:
			e.stream(pc, p, &geminiArray{geminiAnswer: g}, "application/json; charset=UTF-8")
		default:
			e.answerJSON(pc, p, func(b []byte) []byte { return g.appendChunk(b, -1) })
		}
		*bp = g.buf[:0]
		putBuf(bp)
	})
}

// parseGeminiRequest validates a generateContent or countTokens body and collects
// directives from the system instruction's text parts.
func parseGeminiRequest(body []byte, endpoint string) (genRequest, error) {
	req := genRequest{count: endpoint == endpointCountTokens}
	if !gjson.ValidBytes(body) {
		return req, errors.New("Invalid JSON payload received.")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return req, errors.New("Invalid JSON payload received. Expected an object.")
	}
	if inner := root.Get("generateContentRequest"); req.count && inner.IsObject() {
		root = inner // countTokens may wrap a whole generate request
	}
	contents := root.Get("contents")
	if !contents.IsArray() || len(contents.Array()) == 0 {
		return req, errors.New("* GenerateContentRequest.contents: contents is not specified")
	}
	if mt := root.Get("generationConfig.maxOutputTokens"); mt.Exists() {
		if mt.Type != gjson.Number || mt.Num != math.Trunc(mt.Num) || mt.Num < 1 {
			return req, errors.New("* GenerationConfig.max_output_tokens: must be a positive integer")
		}
		req.maxTokens = mt.Int()
	}
	for _, field := range []string{"systemInstruction", "system_instruction"} {
		root.Get(field + ".parts").ForEach(func(_, part gjson.Result) bool {
			req.directives = textDirectives(req.directives, part.Get("text"))
			return true
		})
	}
	return req, nil
}

// geminiAnswer renders the chunks of one answer. A stream has max(n, 1) chunks of one
// text delta each; the last carries finishReason STOP and the final usageMetadata, the
// others the prompt counts only.
type geminiAnswer struct {
	buf   []byte
	id    string
	model string
	n     int
	u     Usage
	// thinks: the request asked for thinking, so a third of the output is reported as
	// thoughtsTokenCount, apart from candidatesTokenCount (both are billed as output).
	thinks bool
	// trace: a Code Assist answer, each chunk wrapped as {"response":…,"traceId":trace}.
	trace string
}

// geminiThinks reports whether a request turns thinking on: a thinkingConfig with a
// positive or dynamic (-1) budget, a thinking level, or includeThoughts.
func geminiThinks(body []byte) bool {
	tc := gjson.GetBytes(body, "generationConfig.thinkingConfig")
	if !tc.IsObject() {
		return false
	}
	if b := tc.Get("thinkingBudget"); b.Exists() {
		return b.Int() != 0
	}
	return tc.Get("includeThoughts").Bool() || tc.Get("thinkingLevel").Exists()
}

func (g *geminiAnswer) total() int   { return max(g.n, 1) }
func (g *geminiAnswer) usageAt() int { return g.total() - 1 }

// appendUsage renders usageMetadata; promptTokenCount includes the cached tokens.
func (g *geminiAnswer) appendUsage(b []byte, final bool) []byte {
	prompt := g.u.Input + g.u.CacheRead
	b = append(b, `"usageMetadata":{"promptTokenCount":`...)
	b = strconv.AppendInt(b, prompt, 10)
	if final {
		thoughts := int64(0)
		if g.thinks {
			thoughts = g.u.Output / 3
		}
		b = append(b, `,"candidatesTokenCount":`...)
		b = strconv.AppendInt(b, g.u.Output-thoughts, 10)
		if thoughts > 0 {
			b = append(b, `,"thoughtsTokenCount":`...)
			b = strconv.AppendInt(b, thoughts, 10)
		}
	}
	if g.u.CacheRead > 0 {
		b = append(b, `,"cachedContentTokenCount":`...)
		b = strconv.AppendInt(b, g.u.CacheRead, 10)
	}
	b = append(b, `,"totalTokenCount":`...)
	total := prompt
	if final {
		total += g.u.Output
	}
	b = strconv.AppendInt(b, total, 10)
	b = append(b, `,"promptTokensDetails":[{"modality":"TEXT","tokenCount":`...)
	b = strconv.AppendInt(b, prompt, 10)
	return append(b, `}]}`...)
}

// appendChunk renders chunk i of a stream, or with i < 0 the whole answer.
func (g *geminiAnswer) appendChunk(b []byte, i int) []byte {
	final := i < 0 || i == g.total()-1
	if g.trace != "" {
		b = append(b, `{"response":`...)
	}
	b = append(b, `{"candidates":[{"content":{"parts":[{"text":"`...)
	switch {
	case i < 0:
		b = appendReply(b, g.n)
	case i < g.n:
		b = append(b, replyWords[i%len(replyWords)]...)
	}
	b = append(b, `"}],"role":"model"}`...)
	if final {
		b = append(b, `,"finishReason":"STOP"`...)
	}
	b = append(b, `,"index":0}],`...)
	b = g.appendUsage(b, final)
	b = append(b, `,"modelVersion":`...)
	b = appendJSONString(b, g.model)
	b = append(b, `,"responseId":"`...)
	b = append(b, g.id...)
	b = append(b, `"}`...)
	if g.trace != "" {
		b = append(b, `,"traceId":"`...)
		b = append(b, g.trace...)
		b = append(b, `"}`...)
	}
	return b
}

// geminiArray renders streamGenerateContent without alt=sse as Google sends it: one JSON
// array of the chunks, of unknown length, written as the chunks are made ("[" with the
// first, "\n,\r\n" before each next one, "]" after the last). A mid-stream error ends it
// with one error element and the "]".
type geminiArray struct {
	*geminiAnswer
	opened bool // "[" was rendered
}

// arraySep is what Google writes between two elements of an array stream.
const arraySep = "\n,\r\n"

func (g *geminiArray) event(i int) []byte {
	b := g.openOrNext(g.buf[:0])
	b = g.appendChunk(b, i)
	if i == g.total()-1 {
		b = append(b, "\n]"...)
	}
	g.buf = b
	return b
}

func (g *geminiArray) errorEvent(f *Failure) []byte {
	word, msg := geminiFailure(f)
	b := g.openOrNext(g.buf[:0])
	b = appendGeminiError(b, geminiCode(word), word, msg, nil)
	g.buf = append(b, "\n]"...)
	return g.buf
}

// openOrNext appends what comes before the next element: "[" or the separator.
func (g *geminiArray) openOrNext(b []byte) []byte {
	if !g.opened {
		g.opened = true
		return append(b, '[')
	}
	return append(b, arraySep...)
}

func (g *geminiAnswer) appendCount(b []byte) []byte {
	prompt := g.u.prompt()
	b = append(b, `{"totalTokens":`...)
	b = strconv.AppendInt(b, prompt, 10)
	b = append(b, `,"promptTokensDetails":[{"modality":"TEXT","tokenCount":`...)
	b = strconv.AppendInt(b, prompt, 10)
	return append(b, `}]}`...)
}

// event renders one SSE chunk: data lines only, separated by CRLF CRLF as Google sends them.
func (g *geminiAnswer) event(i int) []byte {
	b := append(g.buf[:0], "data: "...)
	b = g.appendChunk(b, i)
	g.buf = append(b, "\r\n\r\n"...)
	return g.buf
}

func (g *geminiAnswer) errorEvent(f *Failure) []byte {
	word, msg := geminiFailure(f)
	b := append(g.buf[:0], "data: "...)
	b = appendGeminiError(b, geminiCode(word), word, msg, nil)
	g.buf = append(b, "\r\n\r\n"...)
	return g.buf
}

// geminiFailure is the status word and message of a mid-stream error.
func geminiFailure(f *Failure) (word, msg string) {
	word, msg = f.ErrorType, f.Message
	if word == "" {
		word = "UNAVAILABLE"
	}
	if msg == "" {
		msg = geminiMessage(word)
	}
	return word, msg
}

// geminiModels answers GET /v1beta/models[?pageSize=&pageToken=] and GET .../models/{id}.
func (e *exchange) geminiModels(id string) {
	type model struct {
		Name                       string   `json:"name"`
		Version                    string   `json:"version"`
		DisplayName                string   `json:"displayName"`
		Description                string   `json:"description"`
		InputTokenLimit            int64    `json:"inputTokenLimit"`
		OutputTokenLimit           int64    `json:"outputTokenLimit"`
		SupportedGenerationMethods []string `json:"supportedGenerationMethods"`
		Temperature                float64  `json:"temperature"`
		TopP                       float64  `json:"topP"`
		TopK                       int      `json:"topK"`
		MaxTemperature             float64  `json:"maxTemperature"`
		Thinking                   bool     `json:"thinking"`
	}
	render := func(m Model) model {
		return model{Name: "models/" + m.ID, Version: "001", DisplayName: m.DisplayName, InputTokenLimit: m.MaxInputTokens,
			OutputTokenLimit: m.MaxTokens, SupportedGenerationMethods: []string{"generateContent", "countTokens"},
			Temperature: 1, TopP: 0.95, TopK: 64, MaxTemperature: 2, Thinking: true}
	}
	all := e.s.opts.GeminiModels
	if id != "" {
		for _, m := range all {
			if m.ID == id {
				e.writeJSON(render(m))
				return
			}
		}
		e.fail(http.StatusNotFound, "NOT_FOUND", "models/"+id+" is not found for API version v1beta, or is not supported for generateContent.")
		return
	}
	q := e.r.URL.Query()
	size, start := 50, 0
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			e.badRequest("pageSize must be a positive integer")
			return
		}
		size = min(n, 1000)
	}
	if v := q.Get("pageToken"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > len(all) {
			e.badRequest("Invalid page token.")
			return
		}
		start = n
	}
	end := min(len(all), start+size)
	page := struct {
		Models        []model `json:"models"`
		NextPageToken string  `json:"nextPageToken,omitempty"`
	}{Models: []model{}}
	for _, m := range all[start:end] {
		page.Models = append(page.Models, render(m))
	}
	if end < len(all) {
		page.NextPageToken = strconv.Itoa(end)
	}
	e.writeJSON(page)
}

// geminiStatusWord is the google.rpc status word of an HTTP status.
func geminiStatusWord(status int) string {
	switch status {
	case 400, 405, 413:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 429:
		return "RESOURCE_EXHAUSTED"
	case 503, 529:
		return "UNAVAILABLE"
	case 504:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}

// geminiCode is the HTTP code of a status word, for mid-stream error objects.
func geminiCode(word string) int {
	for _, status := range []int{400, 401, 403, 404, 429, 500, 503, 504} {
		if geminiStatusWord(status) == word {
			return status
		}
	}
	return 500
}

func geminiMessage(word string) string {
	switch word {
	case "API_KEY_INVALID":
		return "API key not valid. Please pass a valid API key."
	case "PERMISSION_DENIED":
		return "The caller does not have permission"
	case "RESOURCE_EXHAUSTED":
		return "You exceeded your current quota, please check your plan and billing details."
	case "UNAVAILABLE":
		return "The model is overloaded. Please try again later."
	case "INTERNAL":
		return "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
	case "DEADLINE_EXCEEDED":
		return "Deadline expired before operation could complete."
	}
	return "mock: scripted " + word
}

// writeGeminiScripted answers a scripted failure. ErrorType "API_KEY_INVALID" gives the
// 400 INVALID_ARGUMENT with an ErrorInfo detail Google answers for a bad key; a 429 carries
// QuotaFailure and RetryInfo details (no headers: Google sends the delay in the body).
func writeGeminiScripted(w http.ResponseWriter, f *Failure, now time.Time, _ string) {
	word, msg := f.ErrorType, f.Message
	var details []byte
	switch {
	case word == reasonKeyInvalid:
		details = []byte(`{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}`)
		if msg == "" {
			msg = geminiMessage(word)
		}
		word = "INVALID_ARGUMENT"
	case f.Status == http.StatusTooManyRequests:
		details = []byte(`{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count","quotaId":"GenerateContentPaidTierInputTokensPerModelPerMinute"}]}`)
		if !f.NoRetryAfter {
			_, secs := resetAt(f, now)
			details = append(details, `,{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"`...)
			details = strconv.AppendInt(details, secs, 10)
			details = append(details, `s"}`...)
		}
	}
	if word == "" {
		word = geminiStatusWord(f.Status)
	}
	if msg == "" {
		msg = geminiMessage(word)
	}
	writeGeminiError(w, f.Status, word, msg, details)
}

// appendGeminiError renders {"error":{"code","message","status"[,"details"]}}; details is
// a comma-separated list of detail objects.
func appendGeminiError(b []byte, code int, word, msg string, details []byte) []byte {
	b = append(b, `{"error":{"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, msg)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, word)
	if len(details) > 0 {
		b = append(b, `,"details":[`...)
		b = append(b, details...)
		b = append(b, ']')
	}
	return append(b, "}}"...)
}

func writeGeminiError(w http.ResponseWriter, status int, word, msg string, details []byte) {
	_ = writeJSONBytes(w, status, appendGeminiError(make([]byte, 0, 128+len(msg)), status, word, msg, details))
}
