package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	oaioption "github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	openaiprov "github.com/fluxcode/fluxcode/internal/provider/openai"
	"github.com/fluxcode/fluxcode/internal/store"
)

// singleOpenAI starts one node serving Anthropic and OpenAI, on SQLite and the in-process
// coordinator, and a tenant of an OpenAI group.
func singleOpenAI(t *testing.T, cfg gateway.Config, o gatewaytest.TenantOptions) (*cluster, *gatewaytest.Tenant) {
	t.Helper()
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{Providers: []provider.Provider{anthropic.New(), openaiprov.New()}})
	c := &cluster{Deps: d, tap: gatewaytest.NewTap(t, d.Mock), clock: &gatewaytest.Clock{}}
	c.nodes = append(c.nodes, gatewaytest.Start(t, d, cfg, "node-1", c.clock.Now))
	g := &store.Group{Name: "openai", Platform: store.PlatformOpenAI, BillingType: store.BillingBalance,
		RateMultiplierPPM: 1_000_000, Status: store.StatusActive}
	if err := d.Store.CreateGroup(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	o.Group = g
	return c, c.tenant(t, o)
}

// openaiAccount creates an OpenAI API-key account, with an organization and a project,
// reached through the tap (its base URL written the OpenAI way, with /v1).
func (c *cluster) openaiAccount(t *testing.T, key string, groups []int64) *store.Account {
	t.Helper()
	return c.account(t, key, groups, func(a *store.Account) {
		a.Platform, a.BaseURL = store.PlatformOpenAI, c.tap.URL+"/v1"
		a.Credentials.Extra = map[string]string{openaiprov.ExtraOrganization: "org-e2e", openaiprov.ExtraProject: "proj_e2e"}
	})
}

// openaiSDK is the official OpenAI SDK pointed at a node, retries off.
func openaiSDK(n *gatewaytest.Node, key string, opts ...oaioption.RequestOption) openai.Client {
	base := []oaioption.RequestOption{oaioption.WithBaseURL(n.URL + "/v1/"), oaioption.WithAPIKey(key), oaioption.WithMaxRetries(0)}
	return openai.NewClient(append(base, opts...)...)
}

func recordOpenAIBody(dst *[]byte) oaioption.Middleware {
	return func(r *http.Request, next oaioption.MiddlewareNext) (*http.Response, error) {
		resp, err := next(r)
		if err == nil {
			resp.Body = &teeBody{ReadCloser: resp.Body, dst: dst}
		}
		return resp, err
	}
}

// oaiUsage is what the mock reports for every answer below: OpenAI counts the 1,200 cached
// tokens inside its 1,500 input tokens; the ledger keeps them apart.
var oaiUsage = mockupstream.Usage{Input: 300, CacheRead: 1200, Output: 45}

// TestOpenAISDK is must-show 1 for OpenAI: the official Go SDK, Responses and Chat
// Completions, JSON and streaming (chat with and without include_usage), gets exactly what
// the mock sent (less the usage chunk the client did not ask for), the client's key never
// reaches the mock, and the ledger holds exactly the mock's tokens.
func TestOpenAISDK(t *testing.T) {
	c, ten := singleOpenAI(t, config(), gatewaytest.TenantOptions{})
	c.openaiAccount(t, "oa-sdk", []int64{ten.Group.ID})
	const words = 12
	if err := c.Mock.SetScript("oa-sdk", mockupstream.Script{Events: words, Usage: &oaiUsage}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lastSent := func() []byte {
		ex := c.tap.Exchanges()
		return ex[len(ex)-1].Body()
	}
	respParams := func(conv string) responses.ResponseNewParams {
		return responses.ResponseNewParams{Model: "gpt-6-sol", Instructions: openai.String("You are terse."),
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(conv)}, Store: openai.Bool(false)}
	}
	chatParams := func(conv string) openai.ChatCompletionNewParams {
		return openai.ChatCompletionNewParams{Model: "gpt-6-sol",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You are terse."), openai.UserMessage(conv)}}
	}
	sdkWant := func(t *testing.T, input, cached, output int64) {
		t.Helper()
		if input != oaiUsage.Input+oaiUsage.CacheRead || cached != oaiUsage.CacheRead || output != oaiUsage.Output {
			t.Errorf("SDK usage input %d cached %d output %d; the mock sent %+v", input, cached, output, oaiUsage)
		}
	}
	requests := 0
	recording := func(dst *[]byte) *openai.Client {
		cl := openaiSDK(c.nodes[0], ten.Secret, oaioption.WithMiddleware(recordOpenAIBody(dst)))
		return &cl
	}

	t.Run("Responses/JSON", func(t *testing.T) {
		var got []byte
		r, err := recording(&got).Responses.New(ctx, respParams("responses json"))
		requests++
		if err != nil {
			t.Fatal(err)
		}
		if sent := lastSent(); !bytes.Equal(got, sent) || r.RawJSON() != string(sent) {
			t.Fatalf("the client received other bytes than the mock sent:\n got %s\nwant %s", got, sent)
		}
		if r.OutputText() != mockupstream.ReplyText(words) {
			t.Errorf("text %q", r.OutputText())
		}
		sdkWant(t, r.Usage.InputTokens, r.Usage.InputTokensDetails.CachedTokens, r.Usage.OutputTokens)
	})
	t.Run("Responses/Stream", func(t *testing.T) {
		var got []byte
		stream := recording(&got).Responses.NewStreaming(ctx, respParams("responses stream"))
		requests++
		var seen []sseEvent
		var done responses.Response
		for stream.Next() {
			ev := stream.Current()
			seen = append(seen, sseEvent{Name: ev.Type, Data: []byte(ev.RawJSON())})
			if ev.Type == "response.completed" {
				done = ev.Response
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatalf("stream: %v", err)
		}
		stream.Close()
		sent := lastSent()
		if !bytes.Equal(got, sent) {
			t.Fatalf("the client received other bytes than the mock sent:\n got %q\nwant %q", got, sent)
		}
		want := upstreamEvents(t, sent)
		if len(seen) != len(want) || len(want) != words+8 {
			t.Fatalf("SDK saw %d events, the mock sent %d", len(seen), len(want))
		}
		for i := range want {
			if seen[i].Name != want[i].Name || !bytes.Equal(seen[i].Data, bytes.TrimSpace(want[i].Data)) {
				t.Fatalf("event %d: SDK %s %s, mock %s %s", i, seen[i].Name, seen[i].Data, want[i].Name, want[i].Data)
			}
		}
		if done.OutputText() != mockupstream.ReplyText(words) {
			t.Errorf("text %q", done.OutputText())
		}
		sdkWant(t, done.Usage.InputTokens, done.Usage.InputTokensDetails.CachedTokens, done.Usage.OutputTokens)
	})
	t.Run("Chat/JSON", func(t *testing.T) {
		var got []byte
		cc, err := recording(&got).Chat.Completions.New(ctx, chatParams("chat json"))
		requests++
		if err != nil {
			t.Fatal(err)
		}
		if sent := lastSent(); !bytes.Equal(got, sent) || cc.RawJSON() != string(sent) {
			t.Fatalf("the client received other bytes than the mock sent:\n got %s\nwant %s", got, sent)
		}
		if cc.Choices[0].Message.Content != mockupstream.ReplyText(words) {
			t.Errorf("text %q", cc.Choices[0].Message.Content)
		}
		sdkWant(t, cc.Usage.PromptTokens, cc.Usage.PromptTokensDetails.CachedTokens, cc.Usage.CompletionTokens)
	})
	for _, includeUsage := range []bool{false, true} {
		name := "Chat/Stream/WithoutUsage"
		if includeUsage {
			name = "Chat/Stream/IncludeUsage"
		}
		t.Run(name, func(t *testing.T) {
			var got []byte
			p := chatParams("chat stream " + name)
			if includeUsage {
				p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			stream := recording(&got).Chat.Completions.NewStreaming(ctx, p)
			requests++
			var seen []sseEvent
			var acc openai.ChatCompletionAccumulator
			for stream.Next() {
				chunk := stream.Current()
				seen = append(seen, sseEvent{Data: []byte(chunk.RawJSON())})
				acc.AddChunk(chunk)
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream: %v", err)
			}
			stream.Close()
			sent := lastSent()
			var want []sseEvent // what the client is to see: every chunk, less [DONE] (the SDK ends there)
			usageChunks := 0
			for _, ev := range upstreamEvents(t, sent) {
				isUsage := bytes.Contains(ev.Data, []byte(`"choices":[],"usage":{`))
				if isUsage {
					usageChunks++
				}
				if string(ev.Data) != "[DONE]" && (includeUsage || !isUsage) {
					want = append(want, sseEvent{Data: bytes.TrimSpace(ev.Data)})
				}
			}
			if usageChunks != 1 {
				t.Fatalf("the mock sent %d usage chunks: the gateway must ask for usage", usageChunks)
			}
			if includeUsage && !bytes.Equal(got, sent) {
				t.Fatalf("the client received other bytes than the mock sent:\n got %q\nwant %q", got, sent)
			}
			if len(seen) != len(want) {
				t.Fatalf("SDK saw %d chunks, want %d:\n%s", len(seen), len(want), got)
			}
			for i := range want {
				if !bytes.Equal(seen[i].Data, want[i].Data) {
					t.Fatalf("chunk %d: SDK %s, mock %s", i, seen[i].Data, want[i].Data)
				}
			}
			if acc.Choices[0].Message.Content != mockupstream.ReplyText(words) {
				t.Errorf("text %q", acc.Choices[0].Message.Content)
			}
			if includeUsage {
				sdkWant(t, acc.Usage.PromptTokens, acc.Usage.PromptTokensDetails.CachedTokens, acc.Usage.CompletionTokens)
			} else if acc.Usage.TotalTokens != 0 || bytes.Contains(got, []byte(`"usage":{`)) {
				t.Errorf("a client that did not ask saw usage: %+v", acc.Usage)
			}
		})
	}

	billed := requests
	t.Run("Models", func(t *testing.T) {
		// The account names no models, so the upstream's list is relayed, in OpenAI's shape.
		page, err := recording(new([]byte)).Models.List(ctx)
		requests++
		if err != nil || len(page.Data) != len(mockupstream.DefaultOpenAIModels) || page.Data[0].ID != mockupstream.DefaultOpenAIModels[0].ID {
			t.Fatalf("models: %+v, %v", page, err)
		}
	})

	// The client's key never reached the mock: each request carried the account's key and
	// organization, and nothing of the client's.
	recorded := c.Mock.Requests("oa-sdk", requests)
	if len(recorded) != requests {
		t.Fatalf("the mock recorded %d requests, want %d", len(recorded), requests)
	}
	for _, r := range recorded {
		if r.Header.Get("Authorization") != "Bearer oa-sdk" || r.Header.Get("OpenAI-Organization") != "org-e2e" ||
			r.Header.Get("OpenAI-Project") != "proj_e2e" {
			t.Errorf("%s: authorization %q organization %q", r.Path, r.Header.Get("Authorization"), r.Header.Get("OpenAI-Organization"))
		}
		for k, vs := range r.Header {
			if strings.Contains(strings.Join(vs, " "), ten.Secret) {
				t.Errorf("%s: the client's key reached the mock in %s", r.Path, k)
			}
		}
		if bytes.Contains(r.Body, []byte(ten.Secret)) {
			t.Errorf("%s: the client's key reached the mock in the body", r.Path)
		}
	}

	// The ledger: one row per request, each with exactly the mock's tokens, cache reads
	// apart from input.
	log := gatewaytest.MockLog(t, c.Mock, "oa-sdk", requests)[:billed]
	got := rows(t, c.Store, store.UsageFilter{UserID: ten.User.ID}, billed)
	ids := map[string]bool{}
	for i, r := range got {
		u := mockupstream.Usage{Input: r.InputTokens, Output: r.OutputTokens, Cache5m: r.CacheCreation5mTokens,
			Cache1h: r.CacheCreation1hTokens, CacheRead: r.CacheReadTokens}
		if r.Partial || r.Cost <= 0 || u != oaiUsage || log[i].Usage != oaiUsage || ids[r.RequestID] || r.Model != "gpt-6-sol" {
			t.Errorf("row %+v; the mock reported %+v", r, log[i].Usage)
		}
		ids[r.RequestID] = true
	}
}

// TestOpenAIErrorShapes is must-show 4 for OpenAI routes: every refusal reaches the SDK as
// an OpenAI error (type, code, message), and the gateway's own refusals say so in
// X-Fluxcode-Reject.
func TestOpenAIErrorShapes(t *testing.T) {
	c, ten := singleOpenAI(t, config(), gatewaytest.TenantOptions{})
	c.openaiAccount(t, "oa-errors", []int64{ten.Group.ID})
	broke := c.tenant(t, gatewaytest.TenantOptions{Group: ten.Group, Balance: -1})
	anth := c.tenant(t, gatewaytest.TenantOptions{})
	ctx := context.Background()
	chat := openai.ChatCompletionNewParams{Model: "gpt-6-sol", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
	resp := responses.ResponseNewParams{Model: "gpt-6-sol", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}}
	client := func(key string) *openai.Client {
		cl := openaiSDK(c.nodes[0], key)
		return &cl
	}

	cases := []struct {
		name   string
		call   func() error
		status int
		code   string
		reject string
	}{
		{"InvalidKey", func() error {
			_, err := client("sk-not-a-key").Chat.Completions.New(ctx, chat)
			return err
		}, 401, "invalid_api_key", gateway.RejectKey},
		{"InvalidKeyModels", func() error {
			_, err := client("sk-not-a-key").Models.List(ctx)
			return err
		}, 401, "invalid_api_key", gateway.RejectKey},
		{"KeyOfAnotherPlatform", func() error {
			_, err := client(anth.Secret).Responses.New(ctx, resp)
			return err
		}, 403, "permission_denied", gateway.RejectForbidden},
		{"BalanceUsedUp", func() error {
			_, err := client(broke.Secret).Responses.New(ctx, resp)
			return err
		}, 402, "insufficient_quota", gateway.RejectBalance},
		{"UnknownRoute", func() error {
			_, err := client(ten.Secret).Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "text-embedding-3-small",
				Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")}})
			return err
		}, 404, "not_found", gateway.RejectRequest},
		{"UpstreamRefusedRequest", func() error {
			if err := c.Mock.SetScript("oa-errors", mockupstream.Script{Fail: &mockupstream.Failure{Status: 400}, FailTimes: 1}); err != nil {
				t.Fatal(err)
			}
			_, err := client(ten.Secret).Chat.Completions.New(ctx, chat)
			return err
		}, 400, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var apiErr *openai.Error
			if err := tc.call(); !errors.As(err, &apiErr) {
				t.Fatalf("not an OpenAI API error: %v", err)
			}
			if apiErr.StatusCode != tc.status || apiErr.Code != tc.code || apiErr.Message == "" || apiErr.Type == "" ||
				!apiErr.JSON.Param.Valid() && apiErr.Param != "" {
				t.Errorf("status %d type %q code %q message %q", apiErr.StatusCode, apiErr.Type, apiErr.Code, apiErr.Message)
			}
			if got := apiErr.Response.Header.Get(gateway.HeaderReject); got != tc.reject {
				t.Errorf("%s %q, want %q", gateway.HeaderReject, got, tc.reject)
			}
		})
	}
}

// lockedTee keeps a copy of what a client reads, readable while the client reads on.
type lockedTee struct {
	mu  sync.Mutex
	buf []byte
}

func (l *lockedTee) middleware(r *http.Request, next oaioption.MiddlewareNext) (*http.Response, error) {
	resp, err := next(r)
	if err == nil {
		resp.Body = &lockedBody{ReadCloser: resp.Body, l: l}
	}
	return resp, err
}

func (l *lockedTee) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf)
}

type lockedBody struct {
	io.ReadCloser
	l *lockedTee
}

func (b *lockedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.l.mu.Lock()
	b.l.buf = append(b.l.buf, p[:n]...)
	b.l.mu.Unlock()
	return n, err
}

// TestOpenAIWaitingStreamPings: a stream waiting for a concurrency slot is kept alive with
// SSE comments, which the SDK skips: once the slot frees, it reads the answer as if it had
// not waited.
func TestOpenAIWaitingStreamPings(t *testing.T) {
	cfg := config()
	cfg.PingInterval = 10 * time.Millisecond
	c, ten := singleOpenAI(t, cfg, gatewaytest.TenantOptions{KeyConcurrency: 1})
	c.openaiAccount(t, "oa-wait", []int64{ten.Group.ID})
	release := c.tap.Hold(t, "the holder")
	ctx := context.Background()
	holder := make(chan error, 1)
	go func() {
		cl := openaiSDK(c.nodes[0], ten.Secret)
		_, err := cl.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-6-sol",
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("the holder")}})
		holder <- err
	}()
	until(t, "the holder reaches the upstream", func() bool { return len(c.tap.Exchanges()) > 0 })

	var tee lockedTee
	type result struct {
		text string
		n    int
		err  error
	}
	waiter := make(chan result, 1)
	go func() {
		cl := openaiSDK(c.nodes[0], ten.Secret, oaioption.WithMiddleware(tee.middleware))
		stream := cl.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "gpt-6-sol",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("the waiter")}})
		var acc openai.ChatCompletionAccumulator
		n := 0
		for stream.Next() {
			acc.AddChunk(stream.Current())
			n++
		}
		r := result{n: n, err: stream.Err()}
		if len(acc.Choices) > 0 {
			r.text = acc.Choices[0].Message.Content
		}
		waiter <- r
	}()
	until(t, "the waiter gets pings", func() bool { return bytes.Count(tee.bytes(), []byte(": ping\n\n")) >= 2 })
	release()
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
	r := <-waiter
	if r.err != nil || r.text != mockupstream.ReplyText(mockupstream.DefaultEvents) || r.n != mockupstream.DefaultEvents+2 {
		t.Fatalf("after the pings the SDK read %d chunks, %q, %v", r.n, r.text, r.err)
	}
	got := tee.bytes()
	ex := c.tap.Exchanges()
	if sent := ex[len(ex)-1].Body(); !bytes.HasPrefix(got, []byte(": ping\n\n")) || bytes.Contains(got, []byte(`"usage":{`)) ||
		!bytes.HasSuffix(got, []byte("data: [DONE]\n\n")) || !bytes.Contains(sent, []byte(`"usage":{`)) {
		t.Fatalf("the client read:\n%s", got)
	}
	rows(t, c.Store, store.UsageFilter{UserID: ten.User.ID}, 2)
}

// until waits for cond, failing t after 30 s.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
