package mockupstream

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
)

// sdkClient is the official Go SDK pointed at the mock, without retries so that every
// scripted failure reaches the test.
func sdkClient(s *Server, opts ...option.RequestOption) anthropic.Client {
	base := []option.RequestOption{option.WithBaseURL(s.URL() + "/"), option.WithMaxRetries(0)}
	return anthropic.NewClient(append(base, opts...)...)
}

func sdkParams() anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     "claude-opus-5-5",
		MaxTokens: 1024,
		System:    []anthropic.TextBlockParam{{Text: "You are terse."}},
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("say hi"))},
	}
}

func checkSDKUsage(t *testing.T, u anthropic.Usage, want Usage) {
	t.Helper()
	got := Usage{Input: u.InputTokens, Output: u.OutputTokens, Cache5m: u.CacheCreation.Ephemeral5mInputTokens,
		Cache1h: u.CacheCreation.Ephemeral1hInputTokens, CacheRead: u.CacheReadInputTokens}
	if got != want || u.CacheCreationInputTokens != want.Cache5m+want.Cache1h {
		t.Errorf("SDK usage = %+v (cache creation total %d), want %+v", got, u.CacheCreationInputTokens, want)
	}
}

func TestSDKMessages(t *testing.T) {
	s := mustStart(t, Options{})
	if err := s.SetScript("sk-sdk", Script{Usage: &fixedUsage, Events: 6}); err != nil {
		t.Fatal(err)
	}
	client := sdkClient(s, option.WithAPIKey("sk-sdk"))
	ctx := context.Background()

	t.Run("json", func(t *testing.T) {
		msg, err := client.Messages.New(ctx, sdkParams())
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if len(msg.Content) != 1 || msg.Content[0].Text != ReplyText(6) || msg.StopReason != anthropic.StopReasonEndTurn ||
			msg.Model != "claude-opus-5-5" {
			t.Errorf("message = %+v", msg)
		}
		checkSDKUsage(t, msg.Usage, fixedUsage)
	})

	t.Run("stream", func(t *testing.T) {
		stream := client.Messages.NewStreaming(ctx, sdkParams())
		var acc anthropic.Message
		var types []string
		for stream.Next() {
			ev := stream.Current()
			types = append(types, ev.Type)
			if err := acc.Accumulate(ev); err != nil {
				t.Fatalf("accumulate %s: %v", ev.Type, err)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream: %v", err)
		}
		want := "message_start,content_block_start," + strings.Repeat("content_block_delta,", 6) +
			"content_block_stop,message_delta,message_stop" // the SDK hides ping
		if got := strings.Join(types, ","); got != want {
			t.Errorf("events = %s", got)
		}
		if len(acc.Content) != 1 || acc.Content[0].Text != ReplyText(6) || acc.StopReason != anthropic.StopReasonEndTurn {
			t.Errorf("accumulated = %+v", acc)
		}
		checkSDKUsage(t, acc.Usage, fixedUsage)
	})

	t.Run("count tokens and models", func(t *testing.T) {
		n, err := client.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{
			Model:    "claude-opus-5-5",
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
		})
		if err != nil || n.InputTokens != fixedUsage.prompt() {
			t.Errorf("CountTokens = %+v, %v; want %d", n, err, fixedUsage.prompt())
		}
		var ids []string
		iter := client.Models.ListAutoPaging(ctx, anthropic.ModelListParams{Limit: anthropic.Int(2)})
		for iter.Next() {
			ids = append(ids, iter.Current().ID)
		}
		if err := iter.Err(); err != nil || strings.Join(ids, ",") != "claude-opus-5-5,claude-sonnet-5-5,claude-haiku-5-5" {
			t.Errorf("models = %v, %v", ids, err)
		}
		m, err := client.Models.Get(ctx, "claude-haiku-5-5", anthropic.ModelGetParams{})
		if err != nil || m.DisplayName != "Claude Haiku 5.5" || m.MaxTokens != 128000 {
			t.Errorf("Get = %+v, %v", m, err)
		}
	})

	if err := s.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats("sk-sdk"); st.Completed != 2 || st.Usage != fixedUsage.Add(fixedUsage) {
		t.Errorf("stats = %+v", st)
	}
}

func TestSDKBearerAndBeta(t *testing.T) {
	s := mustStart(t, Options{})
	client := sdkClient(s, option.WithAuthToken("sk-ant-oat01-token"))
	msg, err := client.Beta.Messages.New(context.Background(), anthropic.BetaMessageNewParams{
		Model:     "claude-sonnet-5-5",
		MaxTokens: 64,
		Messages:  []anthropic.BetaMessageParam{anthropic.NewBetaUserMessage(anthropic.NewBetaTextBlock("hi"))},
		Betas:     []anthropic.AnthropicBeta{"oauth-2025-04-20"},
	})
	if err != nil {
		t.Fatalf("beta New: %v", err)
	}
	reqs := s.Requests("sk-ant-oat01-token", 0)
	if len(reqs) != 1 {
		t.Fatalf("recorded %d requests under the bearer token", len(reqs))
	}
	r := reqs[0]
	if r.RawQuery != "beta=true" || r.Header.Get("Anthropic-Beta") != "oauth-2025-04-20" ||
		r.Header.Get("Authorization") != "Bearer sk-ant-oat01-token" || r.Header.Get("X-Api-Key") != "" {
		t.Errorf("recorded request: query %q headers %v", r.RawQuery, r.Header)
	}
	want := DeriveUsage(r.Body, 0, 64)
	if msg.Usage.InputTokens != want.Input || msg.Usage.OutputTokens != want.Output || msg.Usage.OutputTokens > 64 {
		t.Errorf("usage = %+v, want derived %+v", msg.Usage, want)
	}
}

func TestSDKFailureClasses(t *testing.T) {
	now := time.Now()
	s := mustStart(t, Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	for _, c := range []struct {
		status   int
		wantType string
	}{
		{400, "invalid_request_error"}, {401, "authentication_error"}, {403, "permission_error"},
		{429, "rate_limit_error"}, {500, "api_error"}, {529, "overloaded_error"},
	} {
		t.Run(strconv.Itoa(c.status), func(t *testing.T) {
			key := "sdk-" + strconv.Itoa(c.status)
			if err := s.SetScript(key, Script{Fail: &Failure{Status: c.status, RetryAfter: 30 * time.Second}}); err != nil {
				t.Fatal(err)
			}
			client := sdkClient(s, option.WithAPIKey(key))
			for _, stream := range []bool{false, true} {
				var err error
				if stream {
					st := client.Messages.NewStreaming(ctx, sdkParams())
					for st.Next() {
					}
					err = st.Err()
				} else {
					_, err = client.Messages.New(ctx, sdkParams())
				}
				var apiErr *anthropic.Error
				if !errors.As(err, &apiErr) {
					t.Fatalf("stream=%v: err = %v, want *anthropic.Error", stream, err)
				}
				if apiErr.StatusCode != c.status || string(apiErr.Type()) != c.wantType || !strings.HasPrefix(apiErr.RequestID, "req_") {
					t.Errorf("stream=%v: status %d type %q request id %q", stream, apiErr.StatusCode, apiErr.Type(), apiErr.RequestID)
				}
				if c.status == 429 {
					h := apiErr.Response.Header
					reset, perr := time.Parse(time.RFC3339, h.Get("anthropic-ratelimit-requests-reset"))
					unified, uerr := strconv.ParseInt(h.Get("anthropic-ratelimit-unified-reset"), 10, 64)
					if h.Get("retry-after") != "30" || perr != nil || uerr != nil || reset.Unix() != unified ||
						reset.Before(now.Add(30*time.Second).Truncate(time.Second)) || reset.After(now.Add(31*time.Second)) {
						t.Errorf("429 headers: %v", h)
					}
				}
			}
		})
	}

	t.Run("reset", func(t *testing.T) {
		if err := s.SetScript("sdk-reset", Script{Fail: &Failure{Kind: FailReset}}); err != nil {
			t.Fatal(err)
		}
		client := sdkClient(s, option.WithAPIKey("sdk-reset"))
		_, err := client.Messages.New(ctx, sdkParams())
		var apiErr *anthropic.Error
		if err == nil || errors.As(err, &apiErr) {
			t.Errorf("err = %v, want a network error", err)
		}
	})

	t.Run("mid-stream error", func(t *testing.T) {
		if err := s.SetScript("sdk-mid", Script{Fail: &Failure{Kind: FailError, After: 5}}); err != nil {
			t.Fatal(err)
		}
		client := sdkClient(s, option.WithAPIKey("sdk-mid"))
		st := client.Messages.NewStreaming(ctx, sdkParams())
		var types []string
		for st.Next() {
			types = append(types, st.Current().Type)
		}
		var apiErr *anthropic.Error
		if err := st.Err(); !errors.As(err, &apiErr) || apiErr.Type() != "overloaded_error" || apiErr.StatusCode != http.StatusOK {
			t.Errorf("stream err = %v", err)
		}
		// five events before the error; the SDK hides ping
		if got := strings.Join(types, ","); got != "message_start,content_block_start,content_block_delta,content_block_delta" {
			t.Errorf("events before the error = %s", got)
		}
	})

	t.Run("directive through metadata", func(t *testing.T) {
		p := sdkParams()
		p.Metadata = anthropic.MetadataParam{UserID: anthropic.String(`{"session_id":"s1","note":"mock:fail=529"}`)}
		client := sdkClient(s, option.WithAPIKey("sdk-directive"))
		_, err := client.Messages.New(ctx, p)
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 529 {
			t.Errorf("err = %v, want 529", err)
		}
	})
}
