package openai

import (
	"bytes"

	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// NewMeter implements provider.Provider: a Responses meter (the gateway asks for meters by
// request, NewRequestMeter; this one serves callers that have no request).
func (*Provider) NewMeter() provider.Meter { return &responsesMeter{} }

// NewRequestMeter implements provider.RequestStreams: the meter of the request's API.
func (*Provider) NewRequestMeter(req provider.Request) provider.Meter {
	switch req.Variant {
	case variantChat:
		return &chatMeter{}
	case variantChatUsage:
		return &chatMeter{hideUsage: true}
	}
	return &responsesMeter{}
}

// responsesMeter reads a Responses stream: named events, no [DONE]. The terminal event
// response.completed (or response.incomplete, a normal end at a token limit) carries the
// usage; error and response.failed report a failure. Every other event is skipped after one
// comparison of its name.
type responsesMeter struct {
	usage    provider.Usage
	complete bool
	session  string // of a request continuing the completed response (storedSession)
}

func (m *responsesMeter) Event(name, data []byte) bool {
	if len(name) == 0 && len(data) > 0 {
		name = []byte(gjson.GetBytes(data, "type").Str)
	}
	switch string(name) {
	case "response.completed", "response.incomplete":
		r := gjson.GetBytes(data, "response")
		m.usage = tokensOf(r.Get("usage"))
		m.session = storedSession(r)
		m.complete = true
	case "response.failed":
		if u := gjson.GetBytes(data, "response.usage"); u.IsObject() {
			m.usage = tokensOf(u) // what a failed response consumed is still billed
		}
		return true
	case "error":
		return true
	}
	return false
}

func (m *responsesMeter) Usage() provider.Usage { return m.usage }
func (m *responsesMeter) Complete() bool        { return m.complete }

// AnswerSession implements provider.SessionMeter.
func (m *responsesMeter) AnswerSession() string { return m.session }

// chatMeter reads a Chat Completions stream: unnamed data-only chunks, then "data: [DONE]".
// Usage comes in a chunk of its own with "choices":[] before [DONE], and only when the
// request asked for it (stream_options.include_usage). hideUsage: the gateway asked on the
// client's behalf, so that chunk is kept from the client (provider.Filter).
type chatMeter struct {
	usage     provider.Usage
	complete  bool
	hideUsage bool
	hidden    bool
}

var (
	doneData   = []byte("[DONE]")
	usageKey   = []byte(`"usage":{`)
	errorKey   = []byte(`"error"`)
	emptyArray = "[]"
)

func (m *chatMeter) Event(_, data []byte) bool {
	m.hidden = false
	switch {
	case bytes.Equal(bytes.TrimSpace(data), doneData):
		m.complete = true
	case bytes.Contains(data, usageKey): // chunks without usage say "usage":null, or nothing
		u := gjson.GetBytes(data, "usage")
		if u.IsObject() {
			m.usage = tokensOf(u)
			m.hidden = m.hideUsage && gjson.GetBytes(data, "choices").Raw == emptyArray
		}
	case bytes.Contains(data, errorKey):
		// A failure mid-stream is a chunk {"error":{...}}; a content chunk that merely
		// mentions the word has it inside a string, never as a top-level key.
		return gjson.GetBytes(data, "error").IsObject()
	}
	return false
}

func (m *chatMeter) Usage() provider.Usage { return m.usage }
func (m *chatMeter) Complete() bool        { return m.complete }
func (m *chatMeter) Hidden() bool          { return m.hidden }

// JSONUsage implements provider.Provider for both APIs' non-streamed answers.
func (*Provider) JSONUsage(body []byte) provider.Usage {
	return tokensOf(gjson.GetBytes(body, "usage"))
}

// tokensOf converts an OpenAI usage object, of either API, into the gateway's buckets.
// OpenAI's prompt count (input_tokens, or chat's prompt_tokens) INCLUDES the cached tokens
// (…_tokens_details.cached_tokens) and, where reported, the cache writes
// (cache_write_tokens), while the gateway's Input excludes both: they are priced apart.
// Output (output_tokens, completion_tokens) includes the reasoning tokens, which are billed
// as output, so it is taken whole. A detail larger than the count it is part of (a broken
// upstream) leaves Input at zero rather than negative.
func tokensOf(u gjson.Result) provider.Usage {
	if !u.IsObject() {
		return provider.Usage{}
	}
	var prompt, output, details gjson.Result
	u.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "input_tokens", "prompt_tokens":
			prompt = v
		case "output_tokens", "completion_tokens":
			output = v
		case "input_tokens_details", "prompt_tokens_details":
			details = v
		}
		return true
	})
	t := provider.Usage{
		Output:          max(output.Int(), 0),
		CacheRead:       max(details.Get("cached_tokens").Int(), 0),
		CacheCreation5m: max(details.Get("cache_write_tokens").Int(), 0),
	}
	t.Input = max(prompt.Int()-t.CacheRead-t.CacheCreation5m, 0)
	return t
}
