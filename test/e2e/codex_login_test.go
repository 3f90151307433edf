package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
	"github.com/tidwall/gjson"

	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	openaiprov "github.com/fluxcode/fluxcode/internal/provider/openai"
	"github.com/fluxcode/fluxcode/internal/store"
)

// TestOpenAISDKOnChatGPTLogin: the official OpenAI SDK, speaking the plain Responses API to
// the gateway, is served by a ChatGPT login through the Codex backend: a JSON request comes
// back as one response object built from the backend's stream, a stream as the stream; the
// backend gets the login's token and account and only what it accepts; the ledger holds the
// mock's tokens; Chat Completions is refused with the reason.
func TestOpenAISDKOnChatGPTLogin(t *testing.T) {
	c, ten := singleOpenAI(t, config(), gatewaytest.TenantOptions{})
	l := c.Mock.NewChatGPTLogin("sdk@example.com")
	acct := c.account(t, l.AccessToken, []int64{ten.Group.ID}, func(a *store.Account) {
		a.Platform, a.Type, a.BaseURL = store.PlatformOpenAI, store.AccountTypeOAuth, c.tap.URL
		a.Credentials = store.Credentials{AccessToken: l.AccessToken, RefreshToken: l.RefreshToken, ExpiresAt: l.ExpiresAt,
			Extra: map[string]string{openaiprov.ExtraChatGPTAccountID: l.AccountID}}
	})
	const words = 9
	if err := c.Mock.SetScript(l.AccessToken, mockupstream.Script{Events: words, Usage: &oaiUsage}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client := openaiSDK(c.nodes[0], ten.Secret)
	params := responses.ResponseNewParams{Model: "gpt-6.1-sol", Instructions: openai.String("You are terse."),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("json please")}, MaxOutputTokens: openai.Int(256)}

	r, err := client.Responses.New(ctx, params)
	if err != nil {
		t.Fatalf("Responses.New: %v", err)
	}
	if r.OutputText() != mockupstream.ReplyText(words) || r.Usage.OutputTokens != oaiUsage.Output ||
		r.Usage.InputTokensDetails.CachedTokens != oaiUsage.CacheRead {
		t.Fatalf("text %q usage %+v", r.OutputText(), r.Usage)
	}
	up := c.Mock.Requests(l.AccessToken, 1)[0]
	b := gjson.ParseBytes(up.Body)
	if up.Path != "/backend-api/codex/responses" || up.Header.Get("ChatGPT-Account-ID") != l.AccountID ||
		b.Get("stream").Type != gjson.True || b.Get("store").Type != gjson.False || b.Get("max_output_tokens").Exists() ||
		b.Get("instructions").Str != "You are terse." || b.Get("input.0.content.0.text").Str != "json please" {
		t.Fatalf("the backend got %s %v %s", up.Path, up.Header, up.Body)
	}

	params.Input = responses.ResponseNewParamsInputUnion{OfString: openai.String("stream please")}
	stream := client.Responses.NewStreaming(ctx, params)
	var done responses.Response
	for stream.Next() {
		if ev := stream.Current(); ev.Type == "response.completed" {
			done = ev.Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	stream.Close()
	if done.OutputText() != mockupstream.ReplyText(words) || done.Usage.OutputTokens != oaiUsage.Output {
		t.Fatalf("streamed response %+v", done)
	}

	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-6.1-sol",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("chat please")}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || !strings.Contains(apiErr.Message, "Responses API") {
		t.Fatalf("chat on a ChatGPT login: %v", err)
	}

	for _, u := range rows(t, c.Store, store.UsageFilter{AccountID: acct.ID}, 2) {
		if u.InputTokens != oaiUsage.Input || u.CacheReadTokens != oaiUsage.CacheRead || u.OutputTokens != oaiUsage.Output {
			t.Errorf("ledger row %+v, the mock sent %+v", u, oaiUsage)
		}
	}
}
