package anthropic

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/provider"
)

// A stream of a typical length: 200 text deltas between the usage-bearing events.
func benchStream() string {
	var b strings.Builder
	head, rest, _ := strings.Cut(sampleStream, "event: content_block_delta")
	b.WriteString(head)
	delta := "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"some words of the answer \"}}\n\n"
	for range 200 {
		b.WriteString(delta)
	}
	_, rest, _ = strings.Cut(rest, "\n\n")
	b.WriteString(rest)
	return b.String()
}

func BenchmarkStreamUsage(b *testing.B) {
	stream := benchStream()
	r := strings.NewReader(stream)
	p := New()
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(stream)
		m := p.NewMeter()
		er := provider.NewEventReader(r)
		for {
			ev, err := er.Next()
			if err != nil {
				break
			}
			m.Event(ev.Name, ev.Data)
		}
		er.Release()
		if m.Usage().Output != 5 {
			b.Fatal("wrong usage")
		}
	}
}

func BenchmarkParseRequest(b *testing.B) {
	body := claudeCodeLikeBody()
	h := http.Header{"X-Claude-Code-Session-Id": {"232ebeca-eecb-4308-b9ff-a3fe2280574c"}}
	p := New()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ParseRequest(provider.OpMessages, provider.Inbound{Header: h}, body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBodyRewrite(b *testing.B) {
	body := claudeCodeLikeBody()
	p := New()
	t := provider.Target{Account: apiKeyAccount(), Model: "claude-sonnet-5-5", Rewrite: true}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.NewUpstreamRequest(context.Background(), provider.OpMessages, t, provider.Inbound{}, body); err != nil {
			b.Fatal(err)
		}
	}
}

// claudeCodeLikeBody is ~48 KB like a real Claude Code request (tools, system prompt and history make most of it).
func claudeCodeLikeBody() []byte {
	tool := `{"name":"Bash","description":"` + strings.Repeat("Runs a command. ", 200) + `","input_schema":{"type":"object","properties":{"command":{"type":"string"}}}}`
	tools := strings.TrimSuffix(strings.Repeat(tool+",", 12), ",")
	return []byte(`{"model":"claude-opus-5-5","messages":[{"role":"user","content":[{"type":"text","text":"say hi"}]}],` +
		`"system":[{"type":"text","text":"You are a Claude agent.","cache_control":{"type":"ephemeral"}}],"tools":[` + tools + `],` +
		`"metadata":{"user_id":"{\"device_id\":\"d\",\"account_uuid\":\"\",\"session_id\":\"232ebeca-eecb-4308-b9ff-a3fe2280574c\"}"},` +
		`"max_tokens":128000,"thinking":{"type":"adaptive","display":"omitted"},"stream":true}`)
}
