package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genai"

	"github.com/fluxcode/fluxcode/internal/billing"
	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/provider/anthropic"
	"github.com/fluxcode/fluxcode/internal/provider/gemini"
	"github.com/fluxcode/fluxcode/internal/store"
)

const geminiModel = "gemini-3.8-flash"

// geminiProviders are the protocols of the nodes in these tests.
func geminiProviders() []provider.Provider {
	return []provider.Provider{anthropic.New(), gemini.New()}
}

// geminiSingle starts one node serving Anthropic and Gemini, on SQLite and the in-process
// coordinator, and returns it with a tenant of a new Gemini group.
func geminiSingle(t *testing.T, cfg gateway.Config, o gatewaytest.TenantOptions) (*cluster, *gatewaytest.Tenant) {
	t.Helper()
	c := singleWith(t, cfg, geminiProviders())
	ten, _ := geminiSingleTenant(t, c, o)
	return c, ten
}

// geminiAccount creates a Gemini API-key account whose upstream key is key.
func (c *cluster) geminiAccount(t *testing.T, key string, groups []int64, mutate func(*store.Account)) *store.Account {
	t.Helper()
	return c.account(t, key, groups, func(a *store.Account) {
		a.Platform = store.PlatformGemini
		if mutate != nil {
			mutate(a)
		}
	})
}

// recorder is an http.RoundTripper that keeps a copy of every response body read through it.
type recorder struct{ got *[]byte }

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		*r.got = (*r.got)[:0]
		resp.Body = &teeBody{ReadCloser: resp.Body, dst: r.got}
	}
	return resp, err
}

// genaiClient is Google's Go SDK pointed at a node, as GOOGLE_GEMINI_BASE_URL would point it.
func genaiClient(t *testing.T, n *gatewaytest.Node, key string, got *[]byte) *genai.Client {
	t.Helper()
	if got == nil {
		got = new([]byte)
	}
	cl, err := genai.NewClient(context.Background(), &genai.ClientConfig{
		APIKey: key, Backend: genai.BackendGeminiAPI,
		HTTPClient:  &http.Client{Transport: recorder{got: got}},
		HTTPOptions: genai.HTTPOptions{BaseURL: n.URL + "/"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// genConfig is a small request of conversation conv that turns thinking on, so that the
// answer reports thoughts apart from the candidates.
func genConfig() *genai.GenerateContentConfig {
	budget := int32(1024)
	return &genai.GenerateContentConfig{
		SystemInstruction: genai.NewContentFromText("You are terse.", genai.RoleUser),
		ThinkingConfig:    &genai.ThinkingConfig{ThinkingBudget: &budget},
	}
}

// checkUsage compares the usage an SDK saw with what the mock reported.
func checkUsage(t *testing.T, u *genai.GenerateContentResponseUsageMetadata, want mockupstream.Usage) {
	t.Helper()
	if u == nil || int64(u.PromptTokenCount) != want.Input+want.CacheRead || int64(u.CachedContentTokenCount) != want.CacheRead ||
		int64(u.CandidatesTokenCount+u.ThoughtsTokenCount) != want.Output || u.ThoughtsTokenCount == 0 {
		t.Errorf("usage %+v; the mock reported %+v", u, want)
	}
}

// noClientKey checks that the client's key reached the mock nowhere: not as a key it
// counts, not in a header, not in the query.
func noClientKey(t *testing.T, m *mockupstream.Server, upstreamKey, clientKey string) {
	t.Helper()
	if n := m.Stats(clientKey).Requests; n != 0 {
		t.Errorf("the mock saw %d requests with the client's key", n)
	}
	reqs := m.Requests(upstreamKey, 0)
	if len(reqs) == 0 {
		t.Fatal("the mock recorded no request")
	}
	for _, r := range reqs {
		if r.Key != upstreamKey || strings.Contains(r.RawQuery, clientKey) || strings.Contains(r.RawQuery, "key=") {
			t.Errorf("request %s?%s presented %q", r.Path, r.RawQuery, r.Key)
		}
		for name, vs := range r.Header {
			for _, v := range vs {
				if strings.Contains(v, clientKey) {
					t.Errorf("header %s carries the client's key", name)
				}
			}
		}
	}
}

// lastSent is the body the mock sent for the last model request through the tap.
func lastSent(c *cluster) []byte {
	ex := c.tap.Exchanges()
	for i := len(ex) - 1; i >= 0; i-- {
		if strings.Contains(ex[i].Path, ":") {
			return ex[i].Body()
		}
	}
	return nil
}

// TestGeminiSDK is must-show 1 for Gemini: Google's genai SDK against the gateway gets
// exactly what the mock sent for generateContent, streamGenerateContent (SSE) and
// countTokens; the client's key never reaches the mock; every generation is one ledger row
// with the mock's tokens (prompt includes the cached tokens, thoughts are output) and the
// price of those tokens.
func TestGeminiSDK(t *testing.T) {
	c, ten := geminiSingle(t, config(), gatewaytest.TenantOptions{})
	c.geminiAccount(t, "up-gem", []int64{ten.Group.ID}, nil)
	if err := c.Mock.SetScript("up-gem", mockupstream.Script{Events: 12, Usage: &mockupstream.Usage{Input: 900, CacheRead: 300, Output: 240}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var got []byte
	client := genaiClient(t, c.nodes[0], ten.Secret, &got)

	t.Run("GenerateContent", func(t *testing.T) {
		resp, err := client.Models.GenerateContent(ctx, geminiModel, genai.Text("json please"), genConfig())
		if err != nil {
			t.Fatalf("GenerateContent: %v", err)
		}
		if sent := lastSent(c); !bytes.Equal(got, sent) {
			t.Fatalf("the client received other bytes than the mock sent:\n got %s\nwant %s", got, sent)
		}
		log := gatewaytest.MockLog(t, c.Mock, "up-gem", 1)[0]
		if resp.Text() != mockupstream.ReplyText(12) || resp.ModelVersion != geminiModel {
			t.Errorf("text %q model %q", resp.Text(), resp.ModelVersion)
		}
		checkUsage(t, resp.UsageMetadata, log.Usage)
	})
	t.Run("StreamGenerateContent", func(t *testing.T) {
		var chunks []*genai.GenerateContentResponse
		for resp, err := range client.Models.GenerateContentStream(ctx, geminiModel, genai.Text("stream please"), genConfig()) {
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			chunks = append(chunks, resp)
		}
		sent := lastSent(c)
		if !bytes.Equal(got, sent) {
			t.Fatalf("the client received other bytes than the mock sent:\n got %q\nwant %q", got, sent)
		}
		events := upstreamEvents(t, sent)
		if len(chunks) != len(events) || len(events) != 12 {
			t.Fatalf("the SDK saw %d chunks, the mock sent %d", len(chunks), len(events))
		}
		var text strings.Builder
		for i, ch := range chunks {
			var want struct {
				Candidates []struct {
					Content struct {
						Parts []struct{ Text string } `json:"parts"`
					} `json:"content"`
				} `json:"candidates"`
			}
			if err := json.Unmarshal(events[i].Data, &want); err != nil {
				t.Fatal(err)
			}
			if ch.Text() != want.Candidates[0].Content.Parts[0].Text {
				t.Fatalf("chunk %d: SDK %q, mock %s", i, ch.Text(), events[i].Data)
			}
			text.WriteString(ch.Text())
		}
		if text.String() != mockupstream.ReplyText(12) {
			t.Errorf("accumulated %q", text.String())
		}
		checkUsage(t, chunks[len(chunks)-1].UsageMetadata, gatewaytest.MockLog(t, c.Mock, "up-gem", 1)[0].Usage)
	})
	t.Run("CountTokens", func(t *testing.T) {
		n, err := client.Models.CountTokens(ctx, geminiModel, genai.Text("count me"), nil)
		if err != nil || n.TotalTokens <= 0 {
			t.Fatalf("count tokens: %+v, %v", n, err)
		}
		if sent := lastSent(c); !bytes.Equal(got, sent) {
			t.Fatalf("count: got %s, the mock sent %s", got, sent)
		}
	})
	t.Run("Models", func(t *testing.T) {
		page, err := client.Models.List(ctx, nil)
		if err != nil || len(page.Items) != len(mockupstream.DefaultGeminiModels) {
			t.Fatalf("models: %+v, %v", page, err)
		}
		m, err := client.Models.Get(ctx, geminiModel, nil)
		if err != nil || m.Name != "models/"+geminiModel {
			t.Fatalf("model: %+v, %v", m, err)
		}
	})
	noClientKey(t, c.Mock, "up-gem", ten.Secret)

	// Two generations are billed; counting and listing are not. Each row carries the
	// mock's tokens in the gateway's buckets and their list price.
	price, ok := billing.Default().Lookup(geminiModel)
	if !ok {
		t.Fatalf("no price for %s", geminiModel)
	}
	for _, r := range rows(t, c.Store, store.UsageFilter{UserID: ten.User.ID}, 2) {
		tokens := billing.Tokens{Input: 900, CacheRead: 300, Output: 240}
		if r.Partial || r.Platform != store.PlatformGemini || r.Model != geminiModel || r.InputTokens != 900 ||
			r.CacheReadTokens != 300 || r.OutputTokens != 240 || r.Cost != billing.Cost(price, tokens) || r.Cost <= 0 {
			t.Errorf("row %+v", r)
		}
	}
}

// geminiPost sends a Gemini request over plain HTTP, as the recorded Gemini CLI and curl
// shapes do; header names the key place ("x-goog-api-key", "bearer", "query" or "").
func geminiPost(t *testing.T, n *gatewaytest.Node, path, place, key, body string) (*http.Response, []byte) {
	t.Helper()
	url := n.URL + path
	if place == "query" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		url += sep + "key=" + key
	}
	method := http.MethodPost
	if body == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GeminiCLI/0.61.0/"+geminiModel+" (linux; x64; terminal)")
	req.Header.Set("X-Goog-Api-Client", "google-genai-sdk/1.30.0 gl-node/v20.20.2")
	switch place {
	case "x-goog-api-key":
		req.Header.Set("X-Goog-Api-Key", key)
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("X-Goog-Api-Key", key) // Gemini CLI's bearer mode sends both
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

const cliBody = `{"contents":[{"role":"user","parts":[{"text":"This is the Gemini CLI. We are setting up the context for our chat."}]},{"role":"user","parts":[{"text":"say hi"}]}],"systemInstruction":{"role":"user","parts":[{"text":"You are an interactive CLI agent."}]},"generationConfig":{"temperature":0,"topP":1,"thinkingConfig":{"includeThoughts":true}}}`

// TestGeminiKeyPlacesAndArrayStream: the other key places (?key=, Bearer) and the stream
// without alt=sse, whose answer is one JSON array relayed as it came and metered from its
// last usageMetadata; the query key is taken out before the request goes upstream.
func TestGeminiKeyPlacesAndArrayStream(t *testing.T) {
	c, ten := geminiSingle(t, config(), gatewaytest.TenantOptions{})
	c.geminiAccount(t, "up-gem", []int64{ten.Group.ID}, nil)
	if err := c.Mock.SetScript("up-gem", mockupstream.Script{Events: 6}); err != nil {
		t.Fatal(err)
	}
	for _, place := range []string{"query", "bearer"} {
		resp, got := geminiPost(t, c.nodes[0], "/v1beta/models/"+geminiModel+":streamGenerateContent", place, ten.Secret, cliBody)
		if resp.StatusCode != 200 || !bytes.Equal(got, lastSent(c)) || !bytes.HasPrefix(got, []byte("[")) {
			t.Fatalf("%s: %d %s", place, resp.StatusCode, got)
		}
		var chunks []json.RawMessage
		if err := json.Unmarshal(got, &chunks); err != nil || len(chunks) != 6 {
			t.Fatalf("%s: %d chunks, %v", place, len(chunks), err)
		}
	}
	noClientKey(t, c.Mock, "up-gem", ten.Secret)
	want := gatewaytest.MockLog(t, c.Mock, "up-gem", 2)
	got := rows(t, c.Store, store.UsageFilter{UserID: ten.User.ID}, 2)
	for i, r := range got {
		u := want[i].Usage
		if r.Partial || r.InputTokens != u.Input || r.OutputTokens != u.Output || r.CacheReadTokens != u.CacheRead || r.Cost <= 0 {
			t.Errorf("row %+v; the mock reported %+v", r, u)
		}
	}
}

// TestGeminiSticky: the turns of one Gemini CLI conversation (same system instruction and
// first content) go to one account, though two equal accounts would otherwise take turns.
func TestGeminiSticky(t *testing.T) {
	c, ten := geminiSingle(t, config(), gatewaytest.TenantOptions{})
	c.geminiAccount(t, "up-a", []int64{ten.Group.ID}, nil)
	c.geminiAccount(t, "up-b", []int64{ten.Group.ID}, nil)
	client := genaiClient(t, c.nodes[0], ten.Secret, nil)
	history := genai.Text("the first question")
	for turn := range 4 {
		resp, err := client.Models.GenerateContent(context.Background(), geminiModel, history, genConfig())
		if err != nil {
			t.Fatal(err)
		}
		history = append(history, resp.Candidates[0].Content, genai.NewContentFromText(fmt.Sprintf("turn %d", turn), genai.RoleUser))
	}
	a, b := c.Mock.Stats("up-a").Requests, c.Mock.Stats("up-b").Requests
	if a+b != 4 || (a != 0 && b != 0) {
		t.Fatalf("the conversation was split: %d on one account, %d on the other", a, b)
	}
}

// TestGeminiFailoverPerClass is must-show 3 for Gemini: the preferred account fails once in
// each of Google's error classes; the SDK's request is served by the other account; the
// failed account carries the state the failure calls for.
func TestGeminiFailoverPerClass(t *testing.T) {
	cfg := config()
	cfg.OverloadCooldown = 7 * time.Minute
	type check func(t *testing.T, a *store.Account, sent time.Time)
	noMark := func(t *testing.T, a *store.Account, _ time.Time) {
		if !a.Available(time.Now()) || a.Status != store.StatusActive {
			t.Errorf("the account was marked: %+v", a)
		}
	}
	cases := []struct {
		name  string
		fail  *mockupstream.Failure
		check check
	}{
		{"NetworkError", &mockupstream.Failure{Kind: mockupstream.FailReset}, noMark},
		// A refused key is confirmed with a model-list call of the account's own: a key that
		// still works leaves no mark; a revoked one (Google's 400 API_KEY_INVALID again) is
		// the error state.
		{"KeyInvalidOnce", &mockupstream.Failure{Status: 400, ErrorType: "API_KEY_INVALID"}, noMark},
		{"PermissionDeniedOnce", &mockupstream.Failure{Status: 403}, noMark},
		{"KeyRevoked", nil, func(t *testing.T, a *store.Account, _ time.Time) {
			if a.Status != store.StatusError || !strings.Contains(a.ErrorMessage, "400") || !strings.Contains(a.ErrorMessage, "API key not valid") {
				t.Errorf("status %q message %q; want the error state", a.Status, a.ErrorMessage)
			}
		}},
		{"ResourceExhaustedRetryInfo", &mockupstream.Failure{Status: 429, RetryAfter: 37 * time.Second}, func(t *testing.T, a *store.Account, sent time.Time) {
			if !gatewaytest.Near(a.RateLimitedUntil, sent.Add(37*time.Second), 3*time.Second) {
				t.Errorf("rate limited until %v, want about %v (the RetryInfo delay)", a.RateLimitedUntil, sent.Add(37*time.Second))
			}
		}},
		{"Unavailable", &mockupstream.Failure{Status: 503}, func(t *testing.T, a *store.Account, sent time.Time) {
			if !gatewaytest.Near(a.OverloadedUntil, sent.Add(7*time.Minute), 3*time.Second) {
				t.Errorf("overloaded until %v", a.OverloadedUntil)
			}
		}},
		{"Internal", &mockupstream.Failure{Status: 500}, noMark},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, ten := geminiSingle(t, cfg, gatewaytest.TenantOptions{})
			first := c.geminiAccount(t, "up-first", []int64{ten.Group.ID}, func(a *store.Account) { a.Priority = 10 })
			c.geminiAccount(t, "up-second", []int64{ten.Group.ID}, func(a *store.Account) { a.Priority = 20 })
			script := mockupstream.Script{Revoked: true}
			if tc.fail != nil {
				script = mockupstream.Script{Fail: tc.fail, FailTimes: 1}
			}
			if err := c.Mock.SetScript("up-first", script); err != nil {
				t.Fatal(err)
			}
			var got []byte
			client := genaiClient(t, c.nodes[0], ten.Secret, &got)
			sent := time.Now()
			if _, err := client.Models.GenerateContent(context.Background(), geminiModel, genai.Text("the failing one"), genConfig()); err != nil {
				t.Fatalf("the SDK saw an error: %v", err)
			}
			if n := c.Mock.Stats("up-second").Requests; n != 1 || !bytes.Equal(got, lastSent(c)) {
				t.Fatalf("the second account served %d requests; want the one, relayed", n)
			}
			if c.Mock.Stats("up-first").Requests == 0 {
				t.Fatal("the first account was not tried")
			}
			tc.check(t, gatewaytest.Account(t, c.Store, first.ID), sent)
		})
	}
}

// TestGeminiMidStreamError: an upstream error after the first chunk reaches the SDK as
// exactly one error chunk (the upstream's own, in Google's shape); nothing follows it; no
// other account is tried; what was consumed is billed as partial.
func TestGeminiMidStreamError(t *testing.T) {
	c, ten := geminiSingle(t, config(), gatewaytest.TenantOptions{})
	c.geminiAccount(t, "up-first", []int64{ten.Group.ID}, func(a *store.Account) { a.Priority = 10 })
	c.geminiAccount(t, "up-second", []int64{ten.Group.ID}, func(a *store.Account) { a.Priority = 20 })
	if err := c.Mock.SetScript("up-first", mockupstream.Script{Events: 8, Fail: &mockupstream.Failure{Kind: mockupstream.FailError, After: 3}}); err != nil {
		t.Fatal(err)
	}
	var got []byte
	client := genaiClient(t, c.nodes[0], ten.Secret, &got)
	chunks := 0
	var streamErr error
	for _, err := range client.Models.GenerateContentStream(context.Background(), geminiModel, genai.Text("cut short"), nil) {
		if err != nil {
			streamErr = err
			break
		}
		chunks++
	}
	var apiErr genai.APIError
	if !errors.As(streamErr, &apiErr) || apiErr.Status != "UNAVAILABLE" || apiErr.Code != 503 {
		t.Fatalf("stream error %v; want the upstream's UNAVAILABLE chunk", streamErr)
	}
	if chunks != 3 || bytes.Count(got, []byte(`"error"`)) != 1 || !bytes.Equal(got, lastSent(c)) {
		t.Fatalf("%d chunks before the error; the client got:\n%s", chunks, got)
	}
	if n := c.Mock.Stats("up-second").Requests; n != 0 {
		t.Fatalf("another account was tried after the first byte (%d)", n)
	}
	r := rows(t, c.Store, store.UsageFilter{UserID: ten.User.ID}, 1)[0]
	if !r.Partial || !r.Stream {
		t.Errorf("row %+v; want a partial stream", r)
	}
}

// TestGeminiArrayMidStreamError: the stream without alt=sse is one JSON array sent element
// by element; an upstream that breaks off between two elements leaves the client a valid
// array of the chunks relayed so far and exactly one error element in Google's shape;
// nothing follows it; no other account is tried; what was consumed is billed once, as
// partial. (A break inside an element is cut: internal/gateway TestArrayStreamBrokeOff.)
func TestGeminiArrayMidStreamError(t *testing.T) {
	c, ten := geminiSingle(t, config(), gatewaytest.TenantOptions{})
	c.geminiAccount(t, "up-first", []int64{ten.Group.ID}, func(a *store.Account) { a.Priority = 10 })
	c.geminiAccount(t, "up-second", []int64{ten.Group.ID}, func(a *store.Account) { a.Priority = 20 })
	usage := mockupstream.Usage{Input: 300, CacheRead: 200, Output: 90}
	if err := c.Mock.SetScript("up-first", mockupstream.Script{Events: 8, Usage: &usage,
		Fail: &mockupstream.Failure{Kind: mockupstream.FailDrop, After: 3}}); err != nil {
		t.Fatal(err)
	}
	resp, got := geminiPost(t, c.nodes[0], "/v1beta/models/"+geminiModel+":streamGenerateContent", "x-goog-api-key", ten.Secret, cliBody)
	var elems []json.RawMessage
	if err := json.Unmarshal(got, &elems); resp.StatusCode != 200 || err != nil || len(elems) != 4 {
		t.Fatalf("%d: %d elements (%v):\n%s", resp.StatusCode, len(elems), err, got)
	}
	sent := lastSent(c)
	var e googleErr
	if err := json.Unmarshal(elems[3], &e); err != nil || e.Error.Code != 500 || e.Error.Status != "INTERNAL" ||
		bytes.Count(got, []byte(`"error"`)) != 1 || len(sent) == 0 || !bytes.HasPrefix(got, sent) {
		t.Fatalf("the client got:\n%s\nthe upstream sent:\n%s", got, sent)
	}
	if !bytes.HasSuffix(got, []byte("}]")) || !strings.Contains(string(elems[3]), resp.Header.Get(gateway.HeaderRequestID)) {
		t.Fatalf("the error element does not end the array or lacks the request id:\n%s", got)
	}
	if n := c.Mock.Stats("up-second").Requests; n != 0 {
		t.Fatalf("another account was tried after the first byte (%d)", n)
	}
	r := rows(t, c.Store, store.UsageFilter{UserID: ten.User.ID}, 1)[0]
	if !r.Partial || r.InputTokens != usage.Input || r.CacheReadTokens != usage.CacheRead || r.OutputTokens != 0 ||
		r.RequestID != resp.Header.Get(gateway.HeaderRequestID) {
		t.Errorf("row %+v; want one partial row of the prompt the chunks reported", r)
	}
}

// googleErr is an error body in Google's shape.
type googleErr struct {
	Error struct {
		Code    int              `json:"code"`
		Message string           `json:"message"`
		Status  string           `json:"status"`
		Details []map[string]any `json:"details"`
	} `json:"error"`
}

// TestGeminiErrorShapes is must-show 4 for Gemini: every refusal on a Gemini route, the
// gateway's own included, is {"error":{"code","message","status"}} with code equal to the
// HTTP status, the status word Google uses for it, and X-Fluxcode-Reject when the gateway
// refused at admission.
func TestGeminiErrorShapes(t *testing.T) {
	cfg := config()
	cfg.WaitTimeout = 300 * time.Millisecond
	cfg.PingInterval = 10 * time.Millisecond // a stream that could be pinged would be, at once
	cfg.MaxBodyBytes = 64 << 10
	c, ten := geminiSingle(t, cfg, gatewaytest.TenantOptions{UserConcurrency: 1})
	c.geminiAccount(t, "up-gem", []int64{ten.Group.ID}, func(a *store.Account) {
		a.ModelMapping = map[string]string{geminiModel: "", "gemini-alias": geminiModel}
	})
	broke, _ := geminiSingleTenant(t, c, gatewaytest.TenantOptions{Balance: -1})
	empty, _ := geminiSingleTenant(t, c, gatewaytest.TenantOptions{}) // a group without accounts
	claude := c.tenant(t, gatewaytest.TenantOptions{})                // a key of an Anthropic group
	n := c.nodes[0]
	gen := "/v1beta/models/" + geminiModel + ":generateContent"
	stream := "/v1beta/models/" + geminiModel + ":streamGenerateContent?alt=sse"

	// One request holds the user's only slot while the next asks for one.
	release := c.tap.Hold(t, "hold me")
	held := make(chan struct{})
	var heldStatus atomic.Int64
	go func() {
		defer close(held)
		req, _ := http.NewRequest(http.MethodPost, n.URL+gen, strings.NewReader(`{"contents":[{"role":"user","parts":[{"text":"hold me"}]}]}`))
		req.Header.Set("X-Goog-Api-Key", ten.Secret)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			heldStatus.Store(int64(resp.StatusCode))
		}
	}()
	waitFor(t, func() bool { return c.Mock.Stats("up-gem").Requests == 0 && len(c.tap.Exchanges()) == 1 })

	cases := []struct {
		name, path, place, key, body string
		status                       int
		word, reject                 string
	}{
		{"MissingKey", gen, "", "", cliBody, 400, "INVALID_ARGUMENT", gateway.RejectKey},
		{"InvalidKey", gen, "x-goog-api-key", "fk-not-a-key", cliBody, 400, "INVALID_ARGUMENT", gateway.RejectKey},
		{"InvalidQueryKey", gen, "query", "fk-not-a-key", cliBody, 400, "INVALID_ARGUMENT", gateway.RejectKey},
		// GET /v1/models is shared: an unknown key in Gemini's header gets Google's answer.
		{"InvalidKeySharedModels", "/v1/models", "x-goog-api-key", "fk-not-a-key", "", 400, "INVALID_ARGUMENT", gateway.RejectKey},
		{"MissingKeyV1", "/v1/models/" + geminiModel + ":generateContent", "", "", cliBody, 400, "INVALID_ARGUMENT", gateway.RejectKey},
		{"AnthropicGroupKey", gen, "x-goog-api-key", claude.Secret, cliBody, 403, "PERMISSION_DENIED", gateway.RejectForbidden},
		{"UnknownMethod", "/v1beta/models/" + geminiModel + ":embedContent", "x-goog-api-key", ten.Secret, cliBody, 404, "NOT_FOUND", gateway.RejectRequest},
		{"UnknownPath", "/v1beta/tunedModels", "x-goog-api-key", ten.Secret, cliBody, 404, "NOT_FOUND", gateway.RejectRequest},
		{"ModelNotServed", "/v1beta/models/gemini-unknown", "x-goog-api-key", ten.Secret, "", 404, "NOT_FOUND", gateway.RejectRequest},
		{"NoAccountForModel", "/v1beta/models/gemini-3.5-flash:generateContent", "x-goog-api-key", empty.Secret, cliBody, 503, "UNAVAILABLE", gateway.RejectNoAccount},
		{"BadJSON", gen, "x-goog-api-key", ten.Secret, `{"contents":`, 400, "INVALID_ARGUMENT", gateway.RejectRequest},
		{"NoContents", gen, "x-goog-api-key", ten.Secret, `{"generationConfig":{}}`, 400, "INVALID_ARGUMENT", gateway.RejectRequest},
		{"TooLarge", gen, "x-goog-api-key", ten.Secret, `{"contents":[],"x":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "INVALID_ARGUMENT", gateway.RejectRequest},
		{"Balance", gen, "x-goog-api-key", broke.Secret, cliBody, 402, "FAILED_PRECONDITION", gateway.RejectBalance},
		// A stream waits for the slot without pings (Gemini has none its SDKs skip), so the
		// refusal is still a status the client retries on, not an error inside a 200.
		{"ConcurrencyStream", stream, "x-goog-api-key", ten.Secret, cliBody, 429, "RESOURCE_EXHAUSTED", gateway.RejectConcurrency},
		{"Concurrency", gen, "query", ten.Secret, cliBody, 429, "RESOURCE_EXHAUSTED", gateway.RejectConcurrency},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := geminiPost(t, n, tc.path, tc.place, tc.key, tc.body)
			var e googleErr
			if err := json.Unmarshal(b, &e); err != nil || resp.StatusCode != tc.status || e.Error.Code != tc.status ||
				e.Error.Status != tc.word || e.Error.Message == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("%d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
			if got := resp.Header.Get(gateway.HeaderReject); got != tc.reject {
				t.Errorf("%s = %q, want %q", gateway.HeaderReject, got, tc.reject)
			}
			if tc.word == "INVALID_ARGUMENT" && strings.Contains(tc.name, "Key") && !strings.Contains(string(b), "API_KEY_INVALID") {
				t.Errorf("a refused key without the API_KEY_INVALID reason: %s", b)
			}
		})
	}
	release()
	<-held
	if heldStatus.Load() != 200 {
		t.Errorf("the held request ended %d", heldStatus.Load())
	}
	if n := c.Mock.Stats(ten.Secret).Requests + c.Mock.Stats("fk-not-a-key").Requests; n != 0 {
		t.Errorf("a client key reached the mock %d times", n)
	}
}

// geminiSingleTenant adds a tenant to c, of a new Gemini group unless o names one.
func geminiSingleTenant(t *testing.T, c *cluster, o gatewaytest.TenantOptions) (*gatewaytest.Tenant, *store.Group) {
	t.Helper()
	if o.Group != nil {
		return c.tenant(t, o), o.Group
	}
	g := &store.Group{Name: fmt.Sprintf("gemini-%d", time.Now().UnixNano()), Platform: store.PlatformGemini,
		BillingType: store.BillingBalance, RateMultiplierPPM: 1_000_000, Status: store.StatusActive}
	if err := c.Store.CreateGroup(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	o.Group = g
	return c.tenant(t, o), g
}

// waitFor polls cond until it holds (at most 10s).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestGeminiTwoNodes: on two nodes sharing PostgreSQL and Redis, the turns of one Gemini
// conversation, sent to either node in turn, stay on one account; every generation is one
// ledger row with the mock's tokens, and the balance falls by exactly what the rows charged.
func TestGeminiTwoNodes(t *testing.T) {
	c := sharedWith(t, 2, config(), geminiProviders())
	ten, _ := geminiSingleTenant(t, c, gatewaytest.TenantOptions{})
	c.geminiAccount(t, "up-a", []int64{ten.Group.ID}, nil)
	c.geminiAccount(t, "up-b", []int64{ten.Group.ID}, nil)
	before := gatewaytest.Balance(t, c.Store, ten.User.ID)
	clients := []*genai.Client{genaiClient(t, c.nodes[0], ten.Secret, nil), genaiClient(t, c.nodes[1], ten.Secret, nil)}
	history := genai.Text("a conversation across nodes")
	const turns = 6
	for turn := range turns {
		var resp *genai.GenerateContentResponse
		var err error
		if turn%2 == 0 {
			resp, err = clients[turn%2].Models.GenerateContent(context.Background(), geminiModel, history, genConfig())
		} else {
			for chunk, serr := range clients[turn%2].Models.GenerateContentStream(context.Background(), geminiModel, history, genConfig()) {
				if serr != nil {
					err = serr
					break
				}
				resp = chunk
			}
		}
		if err != nil {
			t.Fatalf("turn %d: %v", turn, err)
		}
		history = append(history, resp.Candidates[0].Content, genai.NewContentFromText(fmt.Sprintf("turn %d", turn), genai.RoleUser))
	}
	a, b := c.Mock.Stats("up-a").Requests, c.Mock.Stats("up-b").Requests
	if a+b != turns || (a != 0 && b != 0) {
		t.Fatalf("the conversation was split across accounts: %d and %d", a, b)
	}
	key := "up-a"
	if b != 0 {
		key = "up-b"
	}
	var charged store.Nanos
	var sum mockupstream.Usage
	for _, r := range rows(t, c.Store, store.UsageFilter{UserID: ten.User.ID}, turns) {
		if r.Partial || r.Platform != store.PlatformGemini || r.Charged <= 0 {
			t.Errorf("row %+v", r)
		}
		charged += r.Charged
		sum = sum.Add(mockupstream.Usage{Input: r.InputTokens, Output: r.OutputTokens, CacheRead: r.CacheReadTokens})
	}
	var want mockupstream.Usage
	for _, e := range gatewaytest.MockLog(t, c.Mock, key, turns) {
		want = want.Add(e.Usage)
	}
	if sum != want {
		t.Errorf("the ledger holds %+v, the mock reported %+v", sum, want)
	}
	waitFor(t, func() bool { return before-gatewaytest.Balance(t, c.Store, ten.User.ID) == charged })
}
