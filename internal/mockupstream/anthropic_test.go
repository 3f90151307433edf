package mockupstream

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var fixedUsage = Usage{Input: 1200, Output: 345, Cache5m: 1000, Cache1h: 500, CacheRead: 7000}

func TestMessagesJSON(t *testing.T) {
	s := mustStart(t, Options{})
	if err := s.SetScript("k1", Script{Usage: &fixedUsage, Events: 5}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/messages", "/v1/messages?beta=true"} {
		t.Run(path, func(t *testing.T) {
			resp := call(t, context.Background(), "POST", s.URL()+path, "k1", simpleBody, nil)
			body := readAll(t, resp)
			if resp.StatusCode != 200 {
				t.Fatalf("status = %d, body %s", resp.StatusCode, body)
			}
			if id := resp.Header.Get("request-id"); !strings.HasPrefix(id, "req_") {
				t.Errorf("request-id = %q, want req_…", id)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content-type = %q", ct)
			}
			var msg struct {
				ID         string `json:"id"`
				Type       string `json:"type"`
				Role       string `json:"role"`
				Model      string `json:"model"`
				StopReason string `json:"stop_reason"`
				Content    []struct {
					Type string `json:"type"`
					Text string `json:"text"`
				} `json:"content"`
				Usage wireUsage `json:"usage"`
			}
			decode(t, body, &msg)
			if !strings.HasPrefix(msg.ID, "msg_") || msg.Type != "message" || msg.Role != "assistant" ||
				msg.Model != "claude-opus-5-5" || msg.StopReason != "end_turn" {
				t.Errorf("message head = %+v", msg)
			}
			if len(msg.Content) != 1 || msg.Content[0].Type != "text" || msg.Content[0].Text != ReplyText(5) {
				t.Errorf("content = %+v, want one text block %q", msg.Content, ReplyText(5))
			}
			if got := msg.Usage.usage(); got != fixedUsage {
				t.Errorf("usage = %+v, want %+v", got, fixedUsage)
			}
			if msg.Usage.CacheCreationInputTokens != fixedUsage.Cache5m+fixedUsage.Cache1h {
				t.Errorf("cache_creation_input_tokens = %d, want 5m+1h", msg.Usage.CacheCreationInputTokens)
			}
		})
	}
	if err := s.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := s.Stats("k1")
	want := Stats{Requests: 2, PeakInFlight: 1, Completed: 2, Usage: fixedUsage.Add(fixedUsage)}
	if st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
}

func TestMessagesStreamExactSequence(t *testing.T) {
	s := mustStart(t, Options{})
	const n = 7
	if err := s.SetScript("k1", Script{Usage: &fixedUsage, Events: n}); err != nil {
		t.Fatal(err)
	}
	resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages?beta=true", "k1", streamBody(""), nil)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content-type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events, err := readSSE(resp.Body)
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	want := []string{"message_start", "content_block_start", "ping"}
	for range n {
		want = append(want, "content_block_delta")
	}
	want = append(want, "content_block_stop", "message_delta", "message_stop")
	var names []string
	for _, ev := range events {
		names = append(names, ev.name)
		var typed struct{ Type string }
		decode(t, []byte(ev.data), &typed)
		if typed.Type != ev.name {
			t.Errorf("event %q carries data type %q", ev.name, typed.Type)
		}
	}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("events =\n%v\nwant\n%v", names, want)
	}

	var start struct {
		Message struct {
			ID      string          `json:"id"`
			Model   string          `json:"model"`
			Content json.RawMessage `json:"content"`
			Usage   wireUsage       `json:"usage"`
		} `json:"message"`
	}
	decode(t, []byte(events[0].data), &start)
	u := start.Message.Usage
	if u.InputTokens != fixedUsage.Input || u.CacheReadInputTokens != fixedUsage.CacheRead ||
		u.CacheCreation.Ephemeral5m != fixedUsage.Cache5m || u.CacheCreation.Ephemeral1h != fixedUsage.Cache1h ||
		u.CacheCreationInputTokens != fixedUsage.Cache5m+fixedUsage.Cache1h || u.OutputTokens != 1 {
		t.Errorf("message_start usage = %+v", u)
	}
	if string(start.Message.Content) != "[]" || start.Message.Model != "claude-opus-5-5" {
		t.Errorf("message_start message = %+v", start.Message)
	}

	var text strings.Builder
	for _, ev := range events[3 : 3+n] {
		var d struct {
			Index int `json:"index"`
			Delta struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"delta"`
		}
		decode(t, []byte(ev.data), &d)
		if d.Delta.Type != "text_delta" || d.Index != 0 {
			t.Errorf("delta = %s", ev.data)
		}
		text.WriteString(d.Delta.Text)
	}
	if text.String() != ReplyText(n) {
		t.Errorf("text = %q, want %q", text.String(), ReplyText(n))
	}

	var delta struct {
		Delta struct {
			StopReason string `json:"stop_reason"`
		} `json:"delta"`
		Usage wireUsage `json:"usage"`
	}
	decode(t, []byte(events[len(events)-2].data), &delta)
	du := delta.Usage
	if delta.Delta.StopReason != "end_turn" || du.OutputTokens != fixedUsage.Output || du.InputTokens != fixedUsage.Input ||
		du.CacheCreationInputTokens != fixedUsage.Cache5m+fixedUsage.Cache1h || du.CacheReadInputTokens != fixedUsage.CacheRead {
		t.Errorf("message_delta = %s", events[len(events)-2].data)
	}

	waitFor(t, "the stream to finish", func() bool { return s.Stats("k1").InFlight == 0 })
	if st := s.Stats("k1"); st.Completed != 1 || st.Usage != fixedUsage || st.Aborted != 0 {
		t.Errorf("stats = %+v", st)
	}
	log := s.Log("k1", 0)
	if len(log) != 1 || !log[0].Completed || !log[0].UsageReported || !log[0].StartSent || log[0].Events != n+6 ||
		log[0].RequestID != resp.Header.Get("request-id") || !log[0].Stream || log[0].Model != "claude-opus-5-5" {
		t.Errorf("log = %+v", log)
	}
}

func TestAuthentication(t *testing.T) {
	s := mustStart(t, Options{})
	t.Run("missing credential is 401", func(t *testing.T) {
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", "", simpleBody, nil)
		var e apiError
		decode(t, readAll(t, resp), &e)
		if resp.StatusCode != 401 || e.Type != "error" || e.Error.Type != "authentication_error" {
			t.Errorf("status %d, body %+v", resp.StatusCode, e)
		}
	})
	t.Run("bearer token is the key", func(t *testing.T) {
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", "", simpleBody,
			map[string]string{"Authorization": "Bearer sk-ant-oat01-abc"})
		readAll(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if st := s.Stats("sk-ant-oat01-abc"); st.Requests != 1 {
			t.Errorf("stats of bearer key = %+v", st)
		}
	})
}

// TestRevokedKey: a revoked key gets 401 on every endpoint, the model list included.
func TestRevokedKey(t *testing.T) {
	s := mustStart(t, Options{})
	if err := s.SetScript("k-revoked", Script{Revoked: true}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path string }{{"POST", "/v1/messages"}, {"GET", "/v1/models"}} {
		resp := call(t, context.Background(), c.method, s.URL()+c.path, "k-revoked", simpleBody, nil)
		var e apiError
		decode(t, readAll(t, resp), &e)
		if resp.StatusCode != 401 || e.Error.Type != "authentication_error" || e.Error.Message != "invalid x-api-key" {
			t.Errorf("%s %s: status %d, body %+v", c.method, c.path, resp.StatusCode, e)
		}
	}
	var sc Script
	if err := sc.UnmarshalJSON([]byte(`{"revoked":true}`)); err != nil || !sc.Revoked {
		t.Errorf("wire form: %+v, %v", sc, err)
	}
}

// TestUnknownBetaIsQuoted: an anthropic-beta value that is not a beta name is refused with a
// 400 that quotes it, as Anthropic does; dated names pass.
func TestUnknownBetaIsQuoted(t *testing.T) {
	s := mustStart(t, Options{})
	resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", "k", simpleBody,
		map[string]string{"Anthropic-Beta": "claude-code-20250219, Your credit balance is too low"})
	var e apiError
	decode(t, readAll(t, resp), &e)
	want := "Unexpected value(s) `Your credit balance is too low` for the `anthropic-beta` header."
	if resp.StatusCode != 400 || e.Error.Type != "invalid_request_error" || !strings.HasPrefix(e.Error.Message, want) {
		t.Errorf("status %d, body %+v", resp.StatusCode, e)
	}
	resp = call(t, context.Background(), "POST", s.URL()+"/v1/messages", "k", simpleBody,
		map[string]string{"Anthropic-Beta": "interleaved-thinking-2025-05-14,oauth-2025-04-20,some-future-beta-2031-01-02"})
	if b := readAll(t, resp); resp.StatusCode != 200 {
		t.Errorf("dated betas refused: %d %s", resp.StatusCode, b)
	}
}

func TestBadRequests(t *testing.T) {
	s := mustStart(t, Options{})
	cases := []struct {
		name, path, body string
		headers          map[string]string
		wantMsg          string
	}{
		{"no anthropic-version", "/v1/messages", simpleBody, map[string]string{"Anthropic-Version": ""}, "anthropic-version"},
		{"bad JSON", "/v1/messages", `{"model":`, nil, "JSON"},
		{"not an object", "/v1/messages", `[1,2]`, nil, "dictionary"},
		{"missing model", "/v1/messages", `{"max_tokens":5,"messages":[]}`, nil, "model: Field required"},
		{"missing max_tokens", "/v1/messages", `{"model":"m","messages":[]}`, nil, "max_tokens: Field required"},
		{"missing messages", "/v1/messages", `{"model":"m","max_tokens":5}`, nil, "messages: Field required"},
		{"fractional max_tokens", "/v1/messages", `{"model":"m","max_tokens":1.5,"messages":[]}`, nil, "max_tokens"},
		{"zero max_tokens", "/v1/messages", `{"model":"m","max_tokens":0,"messages":[]}`, nil, "max_tokens"},
		{"count_tokens without model", "/v1/messages/count_tokens", `{"messages":[]}`, nil, "model: Field required"},
		{"bad directive", "/v1/messages", `{"model":"m","max_tokens":5,"messages":[],"metadata":{"user_id":"mock:fail=teapot"}}`, nil, "mock directive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := call(t, context.Background(), "POST", s.URL()+c.path, "k", c.body, c.headers)
			var e apiError
			decode(t, readAll(t, resp), &e)
			if resp.StatusCode != 400 || e.Type != "error" || e.Error.Type != "invalid_request_error" ||
				!strings.Contains(e.Error.Message, c.wantMsg) {
				t.Errorf("status %d, body %+v; want 400 invalid_request_error containing %q", resp.StatusCode, e, c.wantMsg)
			}
			if e.RequestID == "" || e.RequestID != resp.Header.Get("request-id") {
				t.Errorf("request_id %q, header %q", e.RequestID, resp.Header.Get("request-id"))
			}
		})
	}
	t.Run("extra fields and system messages are accepted", func(t *testing.T) {
		body := `{"model":"m","max_tokens":5,"thinking":{"type":"adaptive"},"output_config":{"effort":"medium"},` +
			`"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]},{"role":"system","content":"x"}]}`
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", "k", body, nil)
		if b := readAll(t, resp); resp.StatusCode != 200 {
			t.Errorf("status %d: %s", resp.StatusCode, b)
		}
	})
	t.Run("unknown path is 404", func(t *testing.T) {
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/nothing", "k", "{}", nil)
		var e apiError
		decode(t, readAll(t, resp), &e)
		if resp.StatusCode != 404 || e.Error.Type != "not_found_error" {
			t.Errorf("status %d, body %+v", resp.StatusCode, e)
		}
	})
	t.Run("body over the limit is 413", func(t *testing.T) {
		small := mustStart(t, Options{MaxBodyBytes: 64})
		resp := call(t, context.Background(), "POST", small.URL()+"/v1/messages", "k", simpleBody+strings.Repeat(" ", 100), nil)
		var e apiError
		decode(t, readAll(t, resp), &e)
		if resp.StatusCode != 413 || e.Error.Type != "request_too_large" {
			t.Errorf("status %d, body %+v", resp.StatusCode, e)
		}
	})
}

func TestCountTokensModelsHello(t *testing.T) {
	s := mustStart(t, Options{})
	if err := s.SetScript("k", Script{Usage: &fixedUsage}); err != nil {
		t.Fatal(err)
	}
	t.Run("count_tokens", func(t *testing.T) {
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages/count_tokens?beta=true", "k",
			`{"model":"m","messages":[{"role":"user","content":"hi"}]}`, nil)
		var got map[string]int64
		decode(t, readAll(t, resp), &got)
		want := fixedUsage.Input + fixedUsage.Cache5m + fixedUsage.Cache1h + fixedUsage.CacheRead
		if resp.StatusCode != 200 || len(got) != 1 || got["input_tokens"] != want {
			t.Errorf("status %d, body %v, want input_tokens %d", resp.StatusCode, got, want)
		}
		if st := s.Stats("k"); st.Usage != (Usage{}) || st.Completed != 0 {
			t.Errorf("count_tokens must not count as billed usage: %+v", st)
		}
	})
	t.Run("hello", func(t *testing.T) {
		resp := call(t, context.Background(), "HEAD", s.URL()+"/api/hello", "", "", nil)
		readAll(t, resp)
		if resp.StatusCode != 200 || resp.Header.Get("request-id") == "" {
			t.Errorf("status %d, request-id %q", resp.StatusCode, resp.Header.Get("request-id"))
		}
	})

	models := []Model{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}, {ID: "e"}}
	ms := mustStart(t, Options{Models: models})
	type page struct {
		Data []struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"data"`
		HasMore bool    `json:"has_more"`
		FirstID *string `json:"first_id"`
		LastID  *string `json:"last_id"`
	}
	ids := func(p page) string {
		var out []string
		for _, m := range p.Data {
			out = append(out, m.ID)
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		query, want string
		more        bool
	}{
		{"", "a,b,c,d,e", false},
		{"?limit=2", "a,b", true},
		{"?limit=2&after_id=b", "c,d", true},
		{"?limit=2&after_id=c", "d,e", false},
		{"?limit=2&before_id=d", "b,c", true},
		{"?limit=3&before_id=c", "a,b", false},
		{"?beta=true&after_id=e", "", false},
	} {
		t.Run("models"+c.query, func(t *testing.T) {
			resp := call(t, context.Background(), "GET", ms.URL()+"/v1/models"+c.query, "k", "", nil)
			var p page
			decode(t, readAll(t, resp), &p)
			if resp.StatusCode != 200 || ids(p) != c.want || p.HasMore != c.more {
				t.Fatalf("status %d, ids %q more %v; want %q more %v", resp.StatusCode, ids(p), p.HasMore, c.want, c.more)
			}
			if c.want == "" && (p.FirstID != nil || p.LastID != nil) {
				t.Errorf("empty page has first/last id")
			}
			if c.want != "" && (*p.FirstID != p.Data[0].ID || *p.LastID != p.Data[len(p.Data)-1].ID || p.Data[0].Type != "model") {
				t.Errorf("page = %+v", p)
			}
		})
	}
	t.Run("model by id", func(t *testing.T) {
		resp := call(t, context.Background(), "GET", s.URL()+"/v1/models/claude-opus-5-5", "k", "", nil)
		var m map[string]any
		decode(t, readAll(t, resp), &m)
		if resp.StatusCode != 200 || m["id"] != "claude-opus-5-5" || m["display_name"] != "Claude Opus 5.5" ||
			m["created_at"] != "2026-09-22T00:00:00Z" || m["line"] != "opus" || m["max_tokens"] != 128000.0 {
			t.Errorf("status %d, model %v", resp.StatusCode, m)
		}
		resp = call(t, context.Background(), "GET", s.URL()+"/v1/models/nope", "k", "", nil)
		var e apiError
		decode(t, readAll(t, resp), &e)
		if resp.StatusCode != 404 || e.Error.Type != "not_found_error" {
			t.Errorf("unknown model: status %d, %+v", resp.StatusCode, e)
		}
	})
}

func TestStatusFailures(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := mustStart(t, Options{Now: func() time.Time { return now }})
	for _, c := range []struct {
		status   int
		wantType string
	}{
		{400, "invalid_request_error"}, {401, "authentication_error"}, {403, "permission_error"},
		{404, "not_found_error"}, {413, "request_too_large"}, {429, "rate_limit_error"},
		{500, "api_error"}, {529, "overloaded_error"},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(strconv.Itoa(c.status)+map[bool]string{false: " json", true: " stream"}[stream], func(t *testing.T) {
				key := "k" + strconv.Itoa(c.status) + strconv.FormatBool(stream)
				if err := s.SetScript(key, Script{Fail: &Failure{Status: c.status, RetryAfter: 90 * time.Second}}); err != nil {
					t.Fatal(err)
				}
				body := simpleBody
				if stream {
					body = streamBody("")
				}
				resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", key, body, nil)
				var e apiError
				decode(t, readAll(t, resp), &e)
				if resp.StatusCode != c.status || e.Type != "error" || e.Error.Type != c.wantType || e.Error.Message == "" ||
					e.RequestID != resp.Header.Get("request-id") {
					t.Errorf("status %d body %+v; want %d %s", resp.StatusCode, e, c.status, c.wantType)
				}
				if c.wantType == "overloaded_error" && e.Error.Message != "Overloaded" {
					t.Errorf("529 message = %q", e.Error.Message)
				}
				h := resp.Header
				if c.status == 429 {
					want := map[string]string{
						"retry-after":                                      "90",
						"anthropic-ratelimit-requests-remaining":           "0",
						"anthropic-ratelimit-requests-reset":               "2026-11-25T12:01:30Z",
						"anthropic-ratelimit-tokens-reset":                 "2026-11-25T12:01:30Z",
						"anthropic-ratelimit-input-tokens-reset":           "2026-11-25T12:01:30Z",
						"anthropic-ratelimit-output-tokens-reset":          "2026-11-25T12:01:30Z",
						"anthropic-ratelimit-unified-status":               "rejected",
						"anthropic-ratelimit-unified-reset":                strconv.FormatInt(now.Add(90*time.Second).Unix(), 10),
						"anthropic-ratelimit-unified-5h-reset":             strconv.FormatInt(now.Add(90*time.Second).Unix(), 10),
						"anthropic-ratelimit-unified-representative-claim": "five_hour",
					}
					for k, v := range want {
						if h.Get(k) != v {
							t.Errorf("%s = %q, want %q", k, h.Get(k), v)
						}
					}
				} else if h.Get("retry-after") != "" || h.Get("anthropic-ratelimit-unified-status") != "" {
					t.Errorf("status %d carries rate-limit headers", c.status)
				}
				if st := s.Stats(key); st.Failures != 1 || st.Errors != 1 || st.Completed != 0 || st.Usage != (Usage{}) {
					t.Errorf("stats = %+v", st)
				}
			})
		}
	}
}

func TestRateLimitHeaderSets(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 250e6, time.UTC)
	s := mustStart(t, Options{Now: func() time.Time { return now }})
	for _, c := range []struct {
		f                      Failure
		retry, api, unified    bool
		wantRetry, wantUnified string
	}{
		{Failure{Status: 429, RateLimit: RateLimitAPI, RetryAfter: 1500 * time.Millisecond}, true, true, false, "2", ""},
		{Failure{Status: 429, RateLimit: RateLimitUnified, NoRetryAfter: true}, false, false, true, "", strconv.FormatInt(now.Unix()+61, 10)},
		{Failure{Status: 429, RateLimit: RateLimitNone}, true, false, false, "60", ""},
	} {
		t.Run(string(c.f.RateLimit), func(t *testing.T) {
			key := "k-" + string(c.f.RateLimit)
			if err := s.SetScript(key, Script{Fail: &c.f}); err != nil {
				t.Fatal(err)
			}
			resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", key, simpleBody, nil)
			readAll(t, resp)
			h := resp.Header
			if got := h.Get("retry-after"); got != c.wantRetry {
				t.Errorf("retry-after = %q, want %q", got, c.wantRetry)
			}
			if got := h.Get("anthropic-ratelimit-requests-reset") != ""; got != c.api {
				t.Errorf("api headers present = %v, want %v", got, c.api)
			}
			if got := h.Get("anthropic-ratelimit-unified-reset"); got != c.wantUnified {
				t.Errorf("unified reset = %q, want %q", got, c.wantUnified)
			}
		})
	}
}

func TestFailTimes(t *testing.T) {
	s := mustStart(t, Options{})
	statuses := func(key string, n int) []int {
		var out []int
		for range n {
			resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", key, simpleBody, nil)
			readAll(t, resp)
			out = append(out, resp.StatusCode)
		}
		return out
	}
	if err := s.SetScript("next2", Script{Fail: &Failure{Status: 529}, FailTimes: 2}); err != nil {
		t.Fatal(err)
	}
	if got := statuses("next2", 4); !slices.Equal(got, []int{529, 529, 200, 200}) {
		t.Errorf("fail next 2: statuses %v", got)
	}
	if err := s.SetScript("always", Script{Fail: &Failure{Status: 500}}); err != nil {
		t.Fatal(err)
	}
	if got := statuses("always", 3); !slices.Equal(got, []int{500, 500, 500}) {
		t.Errorf("fail always: statuses %v", got)
	}
	t.Run("a stream failure is not used up by JSON requests", func(t *testing.T) {
		if err := s.SetScript("streamfail", Script{Fail: &Failure{Kind: FailError}, FailTimes: 1}); err != nil {
			t.Fatal(err)
		}
		if got := statuses("streamfail", 2); !slices.Equal(got, []int{200, 200}) {
			t.Errorf("JSON requests: %v", got)
		}
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", "streamfail", streamBody(""), nil)
		events, _ := readSSE(resp.Body)
		resp.Body.Close()
		if last := events[len(events)-1]; last.name != "error" {
			t.Errorf("stream after JSON requests ended with %q, want the scripted error", last.name)
		}
	})
	t.Run("default script applies per key", func(t *testing.T) {
		if err := s.SetDefaultScript(Script{Fail: &Failure{Status: 401}, FailTimes: 1}); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.SetDefaultScript(Script{}) }()
		if got := statuses("fresh-a", 2); !slices.Equal(got, []int{401, 200}) {
			t.Errorf("fresh-a: %v", got)
		}
		if got := statuses("fresh-b", 1); !slices.Equal(got, []int{401}) {
			t.Errorf("fresh-b: %v", got)
		}
		if got := statuses("always", 1); !slices.Equal(got, []int{500}) {
			t.Errorf("a key with its own script follows it: %v", got)
		}
	})
}

func TestConnectionReset(t *testing.T) {
	s := mustStart(t, Options{})
	if err := s.SetScript("k", Script{Fail: &Failure{Kind: FailReset}}); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{simpleBody, streamBody("")} {
		req, _ := http.NewRequest("POST", s.URL()+"/v1/messages", strings.NewReader(body))
		req.Header.Set("X-Api-Key", "k")
		req.Header.Set("Anthropic-Version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("got status %d, want a network error", resp.StatusCode)
		}
	}
	waitFor(t, "handlers to finish", func() bool { return s.Stats("k").InFlight == 0 })
	for _, e := range s.Log("k", 0) {
		if e.Status != 0 || e.Failure != "reset" {
			t.Errorf("log entry %+v, want status 0 failure reset", e)
		}
	}
}

func TestMidStreamFailures(t *testing.T) {
	s := mustStart(t, Options{})
	t.Run("error event after K events ends the stream", func(t *testing.T) {
		if err := s.SetScript("err", Script{Fail: &Failure{Kind: FailError, After: 4}, Usage: &fixedUsage}); err != nil {
			t.Fatal(err)
		}
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", "err", streamBody(""), nil)
		events, err := readSSE(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("status %d, err %v", resp.StatusCode, err)
		}
		var names []string
		for _, e := range events {
			names = append(names, e.name)
		}
		if got := strings.Join(names, ","); got != "message_start,content_block_start,ping,content_block_delta,error" {
			t.Fatalf("events = %s", got)
		}
		var e apiError
		decode(t, []byte(events[4].data), &e)
		if e.Type != "error" || e.Error.Type != "overloaded_error" || e.Error.Message != "Overloaded" {
			t.Errorf("error event = %s", events[4].data)
		}
		waitFor(t, "the handler", func() bool { return s.Stats("err").InFlight == 0 })
		if st := s.Stats("err"); st.Completed != 0 || st.Usage != (Usage{}) || st.Failures != 1 {
			t.Errorf("stats = %+v", st)
		}
		if l := s.Log("err", 1); len(l) != 1 || !l[0].StartSent || l[0].UsageReported || l[0].Events != 4 || l[0].Failure != "error" {
			t.Errorf("log = %+v", l)
		}
	})
	t.Run("after is capped before message_delta", func(t *testing.T) {
		if err := s.SetScript("late", Script{Events: 2, Fail: &Failure{Kind: FailError, After: 100}}); err != nil {
			t.Fatal(err)
		}
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", "late", streamBody(""), nil)
		events, _ := readSSE(resp.Body)
		resp.Body.Close()
		if len(events) != 7 || events[5].name != "content_block_stop" || events[6].name != "error" {
			t.Errorf("events = %+v", events)
		}
	})
	t.Run("drop cuts the stream", func(t *testing.T) {
		if err := s.SetScript("drop", Script{Fail: &Failure{Kind: FailDrop, After: 2}}); err != nil {
			t.Fatal(err)
		}
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", "drop", streamBody(""), nil)
		events, err := readSSE(resp.Body)
		resp.Body.Close()
		if err == nil || len(events) != 2 {
			t.Errorf("events %d, err %v; want 2 events then a read error", len(events), err)
		}
		resp = call(t, context.Background(), "POST", s.URL()+"/v1/messages", "drop", simpleBody, nil)
		if _, err := io.ReadAll(resp.Body); err == nil || resp.StatusCode != 200 {
			t.Errorf("JSON drop: status %d, read err %v; want headers then a read error", resp.StatusCode, err)
		}
		resp.Body.Close()
	})
	t.Run("stall holds the stream until the peer leaves", func(t *testing.T) {
		if err := s.SetScript("stall", Script{Fail: &Failure{Kind: FailStall, After: 3}}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		resp := call(t, ctx, "POST", s.URL()+"/v1/messages", "stall", streamBody(""), nil)
		br := bufio.NewReader(resp.Body)
		for i := range 3 {
			if _, err := nextEvent(br); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
		next := make(chan error)
		go func() {
			_, err := nextEvent(br)
			next <- err
		}()
		// the stream is held open: nothing more arrives until we leave
		waitFor(t, "the stall", func() bool { return s.Stats("stall").InFlight == 1 })
		cancel()
		if err := <-next; !errors.Is(err, context.Canceled) {
			t.Errorf("after the stall: %v, want our own cancellation", err)
		}
		resp.Body.Close()
		waitFor(t, "the handler to see the peer leave", func() bool { return s.Stats("stall").InFlight == 0 })
		if st := s.Stats("stall"); st.Aborted != 1 || st.Completed != 0 {
			t.Errorf("stats = %+v", st)
		}
	})
	t.Run("stall on JSON sends headers only", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp := call(t, ctx, "POST", s.URL()+"/v1/messages", "stall", simpleBody, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		cancel()
		if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
			t.Errorf("read = %v, want the cancellation (no body was sent)", err)
		}
		resp.Body.Close()
	})
}

func TestClientAbortIsCounted(t *testing.T) {
	s := mustStart(t, Options{})
	// a long pause between events: the client leaves while the mock waits
	if err := s.SetScript("k", Script{Events: 5, Interval: time.Hour, Usage: &fixedUsage}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	resp := call(t, ctx, "POST", s.URL()+"/v1/messages", "k", streamBody(""), nil)
	buf := make([]byte, 1)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatalf("read first byte: %v", err)
	}
	cancel()
	resp.Body.Close()
	waitFor(t, "the handler to notice", func() bool { return s.Stats("k").InFlight == 0 })
	st := s.Stats("k")
	if st.Aborted != 1 || st.Completed != 0 || st.Usage != (Usage{}) {
		t.Errorf("stats = %+v", st)
	}
	l := s.Log("k", 0)
	if len(l) != 1 || !l[0].Aborted || !l[0].StartSent || l[0].UsageReported || l[0].Usage != fixedUsage {
		t.Errorf("log = %+v", l)
	}
}

func TestPeakInFlight(t *testing.T) {
	s := mustStart(t, Options{})
	// requests wait before their headers until their client gives up
	if err := s.SetScript("k", Script{Latency: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "POST", s.URL()+"/v1/messages", strings.NewReader(simpleBody))
			req.Header.Set("X-Api-Key", "k")
			req.Header.Set("Anthropic-Version", "2023-06-01")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	waitFor(t, "5 requests in flight", func() bool { return s.Stats("k").InFlight == 5 })
	if st := s.Stats("k"); st.PeakInFlight != 5 || st.Requests != 5 {
		t.Errorf("stats = %+v", st)
	}
	cancel()
	wg.Wait()
	waitFor(t, "no request in flight", func() bool { return s.Stats("k").InFlight == 0 })
	if st := s.Stats("k"); st.PeakInFlight != 5 || st.Aborted != 5 {
		t.Errorf("after cancel: %+v", st)
	}
	s.ResetPeak("k")
	if st := s.Stats("k"); st.PeakInFlight != 0 || st.Requests != 5 {
		t.Errorf("after ResetPeak: %+v", st)
	}
}

func TestRecordedRequests(t *testing.T) {
	s := mustStart(t, Options{RecordPerKey: 2})
	bodies := []string{
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"one"}]}`,
		`{"model":"m","max_tokens":5,  "messages":[{"role":"user","content":"two \u00e9"}]}`,
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"three"}],"zzz":1}`,
	}
	var ids []string
	for _, b := range bodies {
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages?beta=true", "k", b,
			map[string]string{"Anthropic-Beta": "claude-code-20250219,oauth-2025-04-20"})
		readAll(t, resp)
		ids = append(ids, resp.Header.Get("request-id"))
	}
	got := s.Requests("k", 0)
	if len(got) != 2 {
		t.Fatalf("kept %d requests, want the last 2", len(got))
	}
	for i, rr := range got {
		if string(rr.Body) != bodies[i+1] || rr.RequestID != ids[i+1] || rr.Path != "/v1/messages" ||
			rr.RawQuery != "beta=true" || rr.Method != "POST" ||
			rr.Header.Get("Anthropic-Beta") != "claude-code-20250219,oauth-2025-04-20" {
			t.Errorf("request %d = %+v body %s", i, rr, rr.Body)
		}
	}
	if last := s.Requests("k", 1); len(last) != 1 || string(last[0].Body) != bodies[2] {
		t.Errorf("Requests(k, 1) = %+v", last)
	}
}

func TestDirectives(t *testing.T) {
	s := mustStart(t, Options{})
	t.Run("fail from metadata.user_id", func(t *testing.T) {
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", "k",
			`{"model":"m","max_tokens":5,"messages":[],"metadata":{"user_id":"{\"session_id\":\"x mock:fail=529 y\"}"}}`, nil)
		var e apiError
		decode(t, readAll(t, resp), &e)
		if resp.StatusCode != 529 || e.Error.Type != "overloaded_error" {
			t.Errorf("status %d %+v", resp.StatusCode, e)
		}
	})
	t.Run("events and usage from a system block", func(t *testing.T) {
		body := streamBody(`,"system":[{"type":"text","text":"You are helpful."},{"type":"text","text":"mock:events=9,interval=1ms mock:usage=11/22/33/44/55"}]`)
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", "k", body, nil)
		events, err := readSSE(resp.Body)
		resp.Body.Close()
		if err != nil || len(events) != 9+6 {
			t.Fatalf("%d events, err %v; want 15", len(events), err)
		}
		var d struct{ Usage wireUsage }
		decode(t, []byte(events[len(events)-2].data), &d)
		if d.Usage.InputTokens != 11 || d.Usage.OutputTokens != 22 || d.Usage.CacheCreationInputTokens != 77 || d.Usage.CacheReadInputTokens != 55 {
			t.Errorf("message_delta usage = %+v", d.Usage)
		}
	})
	t.Run("system string, 429 with retry_after", func(t *testing.T) {
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", "k",
			`{"model":"m","max_tokens":5,"messages":[],"system":"mock:fail=429,retry_after=7s,ratelimit=unified"}`, nil)
		readAll(t, resp)
		if resp.StatusCode != 429 || resp.Header.Get("retry-after") != "7" ||
			resp.Header.Get("anthropic-ratelimit-unified-status") != "rejected" ||
			resp.Header.Get("anthropic-ratelimit-requests-reset") != "" {
			t.Errorf("status %d headers %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("directive failure overrides and keeps the script's count", func(t *testing.T) {
		if err := s.SetScript("d", Script{Fail: &Failure{Status: 500}, FailTimes: 1}); err != nil {
			t.Fatal(err)
		}
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", "d",
			`{"model":"m","max_tokens":5,"messages":[],"system":"mock:fail=403"}`, nil)
		readAll(t, resp)
		if resp.StatusCode != 403 {
			t.Errorf("status %d, want the directive's 403", resp.StatusCode)
		}
		resp = call(t, context.Background(), "POST", s.URL()+"/v1/messages", "d", simpleBody, nil)
		readAll(t, resp)
		if resp.StatusCode != 500 {
			t.Errorf("status %d, want the script's 500", resp.StatusCode)
		}
	})
	t.Run("parse", func(t *testing.T) {
		got := findDirectives(nil, `a mock:fail=529,after=3" b mock:events=2`)
		if strings.Join(got, "|") != "fail=529,after=3|events=2" {
			t.Errorf("findDirectives = %q", got)
		}
		var p plan
		if err := applyDirective(&p, "after=3", nil, 10); err == nil {
			t.Error("after without fail accepted")
		}
		if err := applyDirective(&p, "latency=0.5,events=3,interval=2ms,fail=stall,after=1", nil, 10); err != nil {
			t.Fatal(err)
		}
		if p.latency != 500*time.Millisecond || p.events != 3 || p.interval != 2*time.Millisecond ||
			p.fail.kind() != FailStall || p.fail.After != 1 {
			t.Errorf("plan = %+v fail %+v", p, p.fail)
		}
		for _, bad := range []string{"events=-1", "nope=1", "fail", "usage=1/2/3/4/5/6", "latency=-1s", "fail=200"} {
			if err := applyDirective(&plan{}, bad, nil, 10); err == nil {
				t.Errorf("directive %q accepted", bad)
			}
		}
	})
}

func TestDeriveUsage(t *testing.T) {
	a := DeriveUsage([]byte(`{"n":1}`), 0, 4096)
	if a != DeriveUsage([]byte(`{"n":1}`), 0, 4096) {
		t.Error("derived usage is not deterministic")
	}
	distinct := map[Usage]bool{}
	var zeroCache, withCache int
	for i := range 500 {
		u := DeriveUsage([]byte(`{"n":`+strconv.Itoa(i)+`}`), 7, 300)
		distinct[u] = true
		if u.Input < 1 || u.Input > 5000 || u.Output < 1 || u.Output > 300 || u.Cache5m < 0 || u.Cache5m > 4000 ||
			u.Cache1h < 0 || u.Cache1h > 2000 || u.CacheRead < 0 || u.CacheRead > 30000 {
			t.Fatalf("usage out of range: %+v", u)
		}
		if u.Cache5m == 0 {
			zeroCache++
		} else {
			withCache++
		}
	}
	if len(distinct) < 495 || zeroCache == 0 || withCache == 0 {
		t.Errorf("%d distinct of 500, %d without cache writes, %d with", len(distinct), zeroCache, withCache)
	}
	if DeriveUsage([]byte(`{"n":1}`), 1, 4096) == a {
		t.Error("the seed does not change the usage")
	}

	s := mustStart(t, Options{})
	resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", "k", simpleBody, nil)
	var msg struct{ Usage wireUsage }
	decode(t, readAll(t, resp), &msg)
	if want := DeriveUsage([]byte(simpleBody), 0, 1024); msg.Usage.usage() != want {
		t.Errorf("default usage = %+v, want derived %+v", msg.Usage.usage(), want)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0"} {
		if err := New(Options{Addr: addr}).Start(); err == nil {
			t.Errorf("Start on %s succeeded, want a refusal", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "127.0.0.2:0", "[::1]:0", "localhost:0"} {
		if err := checkLoopback(addr); err != nil {
			t.Errorf("checkLoopback(%s) = %v", addr, err)
		}
	}
}
