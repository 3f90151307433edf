package gemini

import (
	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// meter reads usage from a streamed answer (alt=sse): every chunk is a partial
// GenerateContentResponse whose usageMetadata, when present, is cumulative, so the last one
// seen is the answer's; they are never added up. The answer is complete once a candidate
// has a finishReason, or the prompt was blocked (promptFeedback.blockReason, no candidates).
// An object with a top-level "error" is an error event.
type meter struct {
	usage    provider.Usage
	complete bool
}

// NewMeter implements provider.Provider.
func (*Provider) NewMeter() provider.Meter { return &meter{} }

func (m *meter) Event(_, data []byte) bool {
	isError := false
	gjson.ParseBytes(data).ForEach(func(key, value gjson.Result) bool {
		switch key.Str {
		case "error":
			isError = true
			return false
		case "usageMetadata":
			if value.IsObject() {
				m.usage = usageOf(value)
			}
		case "candidates":
			value.ForEach(func(_, c gjson.Result) bool {
				if c.Get("finishReason").Exists() {
					m.complete = true
				}
				return !m.complete
			})
		case "promptFeedback":
			if value.Get("blockReason").Exists() {
				m.complete = true
			}
		}
		return true
	})
	return isError
}

func (m *meter) Usage() provider.Usage { return m.usage }
func (m *meter) Complete() bool        { return m.complete }

// JSONUsage implements provider.Provider: a generateContent answer (one object), or a
// streamGenerateContent answer without alt=sse (a JSON array of chunks, whose last
// usageMetadata is the answer's).
func (*Provider) JSONUsage(body []byte) provider.Usage {
	root := gjson.ParseBytes(body)
	if root.IsArray() {
		var last gjson.Result
		root.ForEach(func(_, chunk gjson.Result) bool {
			if u := chunk.Get("usageMetadata"); u.IsObject() {
				last = u
			}
			return true
		})
		return usageOf(last)
	}
	return usageOf(root.Get("usageMetadata"))
}

// usageOf converts usageMetadata into the gateway's buckets. promptTokenCount includes
// cachedContentTokenCount (input excludes cache reads in the gateway's buckets); tool-use
// prompt tokens are input; thoughtsTokenCount is not part of candidatesTokenCount and is
// billed as output. Gemini reports no cache writes.
func usageOf(u gjson.Result) provider.Usage {
	if !u.IsObject() {
		return provider.Usage{}
	}
	prompt := u.Get("promptTokenCount").Int()
	cached := u.Get("cachedContentTokenCount").Int()
	toolUse := u.Get("toolUsePromptTokenCount").Int()
	cached = min(max(cached, 0), max(prompt, 0))
	return provider.Usage{
		Input:     max(prompt-cached, 0) + max(toolUse, 0),
		CacheRead: cached,
		Output:    max(u.Get("candidatesTokenCount").Int(), 0) + max(u.Get("thoughtsTokenCount").Int(), 0),
	}
}
