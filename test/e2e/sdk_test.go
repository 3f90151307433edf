package e2e

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

type teeBody struct {
	io.ReadCloser
	dst *[]byte
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	*b.dst = append(*b.dst, p[:n]...)
	return n, err
}

// upstreamEvents splits what the mock sent into events.
func upstreamEvents(t *testing.T, raw []byte) []sseEvent {
	t.Helper()
	er := provider.NewEventReader(bytes.NewReader(raw))
	defer er.Release()
	var out []sseEvent
	for {
		ev, err := er.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("the mock's stream does not parse: %v", err)
		}
		out = append(out, sseEvent{Name: string(ev.Name), Data: bytes.Clone(ev.Data)})
	}
}

func sdkUsage(u anthropic.Usage) mockupstream.Usage {
	return mockupstream.Usage{Input: u.InputTokens, Output: u.OutputTokens, Cache5m: u.CacheCreation.Ephemeral5mInputTokens,
		Cache1h: u.CacheCreation.Ephemeral1hInputTokens, CacheRead: u.CacheReadInputTokens}
}

// TestSDK is must-show 1: the official SDK against the gateway gets exactly what the mock
// sent, JSON and streaming, event for event; with either way of presenting the key.
func TestSDK(t *testing.T) {
	c := single(t, config())
	ten := c.tenant(t, gatewaytest.TenantOptions{})
	c.account(t, "up-sdk", []int64{ten.Group.ID}, nil)
	if err := c.Mock.SetScript("up-sdk", mockupstream.Script{Events: 25}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, auth := range []struct {
		name string
		opt  option.RequestOption
	}{
		{"XAPIKey", option.WithAPIKey(ten.Secret)},
		{"Bearer", option.WithAuthToken(ten.Secret)},
	} {
		t.Run(auth.name+"/JSON", func(t *testing.T) {
			var got []byte
			client := sdk(c.nodes[0], "", auth.opt, option.WithMiddleware(recordBody(&got)))
			msg, err := client.Messages.New(ctx, params("json via "+auth.name))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			ex := c.tap.Exchanges()
			sent := ex[len(ex)-1].Body()
			if !bytes.Equal(got, sent) || msg.RawJSON() != string(sent) {
				t.Fatalf("the client received other bytes than the mock sent:\n got %s\nwant %s", got, sent)
			}
			log := gatewaytest.MockLog(t, c.Mock, "up-sdk", 1)[0]
			if sdkUsage(msg.Usage) != log.Usage || msg.Content[0].Text != mockupstream.ReplyText(25) {
				t.Errorf("usage %+v text %q; the mock reported %+v", sdkUsage(msg.Usage), msg.Content[0].Text, log.Usage)
			}
		})
		t.Run(auth.name+"/Stream", func(t *testing.T) {
			var got []byte
			client := sdk(c.nodes[0], "", auth.opt, option.WithMiddleware(recordBody(&got)))
			stream := client.Messages.NewStreaming(ctx, params("stream via "+auth.name))
			var seen []sseEvent
			var acc anthropic.Message
			for stream.Next() {
				ev := stream.Current()
				seen = append(seen, sseEvent{Name: ev.Type, Data: []byte(ev.RawJSON())})
				if err := acc.Accumulate(ev); err != nil {
					t.Fatal(err)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream: %v", err)
			}
			stream.Close()
			ex := c.tap.Exchanges()
			sent := ex[len(ex)-1].Body()
			if !bytes.Equal(got, sent) {
				t.Fatalf("the client received other bytes than the mock sent:\n got %q\nwant %q", got, sent)
			}
			var want []sseEvent
			for _, ev := range upstreamEvents(t, sent) {
				if ev.Name != "ping" { // the SDK hides pings; they are in the byte comparison above
					want = append(want, ev)
				}
			}
			if len(seen) != len(want) || len(want) != 25+5 {
				t.Fatalf("SDK saw %d events, the mock sent %d (+ pings)", len(seen), len(want))
			}
			for i := range want {
				if seen[i].Name != want[i].Name || !bytes.Equal(seen[i].Data, want[i].Data) {
					t.Fatalf("event %d: SDK %s %s, mock %s %s", i, seen[i].Name, seen[i].Data, want[i].Name, want[i].Data)
				}
			}
			if acc.Content[0].Text != mockupstream.ReplyText(25) || sdkUsage(acc.Usage) != gatewaytest.MockLog(t, c.Mock, "up-sdk", 1)[0].Usage {
				t.Errorf("accumulated %q usage %+v", acc.Content[0].Text, acc.Usage)
			}
		})
	}

	t.Run("CountTokens", func(t *testing.T) {
		client := sdk(c.nodes[0], ten.Secret)
		n, err := client.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{
			Model:    "claude-sonnet-5-5",
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("count me"))},
		})
		if err != nil || n.InputTokens <= 0 {
			t.Fatalf("count tokens: %+v, %v", n, err)
		}
	})
	t.Run("Models", func(t *testing.T) {
		client := sdk(c.nodes[0], ten.Secret)
		page, err := client.Models.List(ctx, anthropic.ModelListParams{})
		if err != nil || len(page.Data) != len(mockupstream.DefaultModels) {
			t.Fatalf("models: %+v, %v", page, err)
		}
	})

	// Every message above is one ledger row; count_tokens and models are not billed.
	got := rows(t, c.Store, store.UsageFilter{UserID: ten.User.ID}, 4)
	for _, r := range got {
		if r.Partial || r.AccountID == 0 || r.Cost <= 0 {
			t.Errorf("row %+v", r)
		}
	}
}
