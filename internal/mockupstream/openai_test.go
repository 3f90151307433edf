package mockupstream

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
)

// openaiCall sends an OpenAI request with a Bearer key (and no Anthropic headers).
func openaiCall(t *testing.T, s *Server, method, path, key, body string) ([]byte, int, map[string]string) {
	t.Helper()
	h := map[string]string{"Anthropic-Version": ""}
	if key != "" {
		h["Authorization"] = "Bearer " + key
	}
	resp := call(t, context.Background(), method, s.URL()+path, "", body, h)
	b := readAll(t, resp)
	hdr := map[string]string{}
	for k := range resp.Header {
		hdr[strings.ToLower(k)] = resp.Header.Get(k)
	}
	return b, resp.StatusCode, hdr
}

type openaiErrorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

const chatBody = `{"model":"gpt-6-sol","messages":[{"role":"developer","content":"be brief"},{"role":"user","content":"hi"}]`

func TestOpenAIChat(t *testing.T) {
	s := mustStart(t, Options{})
	// cache writes are not an OpenAI bucket: they must be reported (and counted) as zero
	if err := s.SetScript("sk-oa", Script{Usage: &fixedUsage, Events: 5}); err != nil {
		t.Fatal(err)
	}
	wantPrompt := fixedUsage.Input + fixedUsage.CacheRead
	reported := Usage{Input: fixedUsage.Input, Output: fixedUsage.Output, CacheRead: fixedUsage.CacheRead}

	t.Run("json", func(t *testing.T) {
		b, code, h := openaiCall(t, s, "POST", "/v1/chat/completions", "sk-oa", chatBody+`}`)
		if code != 200 || h["x-request-id"] == "" {
			t.Fatalf("status %d, headers %v: %s", code, h, b)
		}
		var c struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Model   string `json:"model"`
			Choices []struct {
				Message struct {
					Role    string `json:"role"`
					Content string `json:"content"`
				} `json:"message"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
			Usage chatUsage `json:"usage"`
		}
		decode(t, b, &c)
		if !strings.HasPrefix(c.ID, "chatcmpl-") || c.Object != "chat.completion" || c.Model != "gpt-6-sol" ||
			len(c.Choices) != 1 || c.Choices[0].Message.Content != ReplyText(5) || c.Choices[0].FinishReason != "stop" {
			t.Errorf("completion = %s", b)
		}
		if c.Usage.PromptTokens != wantPrompt || c.Usage.PromptTokensDetails.CachedTokens != fixedUsage.CacheRead ||
			c.Usage.CompletionTokens != fixedUsage.Output || c.Usage.TotalTokens != wantPrompt+fixedUsage.Output {
			t.Errorf("usage = %+v", c.Usage)
		}
	})

	t.Run("stream without include_usage carries no usage", func(t *testing.T) {
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/chat/completions", "", chatBody+`,"stream":true}`,
			map[string]string{"Authorization": "Bearer sk-oa", "Anthropic-Version": ""})
		events, err := readSSE(resp.Body)
		resp.Body.Close()
		if err != nil || len(events) != 5+3 {
			t.Fatalf("%d events, %v", len(events), err)
		}
		var text strings.Builder
		for i, ev := range events {
			if ev.name != "" {
				t.Errorf("event %d has a name %q", i, ev.name)
			}
			if i == len(events)-1 {
				if ev.data != "[DONE]" {
					t.Errorf("last = %q", ev.data)
				}
				continue
			}
			if strings.Contains(ev.data, `"usage"`) {
				t.Errorf("chunk %d mentions usage: %s", i, ev.data)
			}
			var ch struct {
				Object  string `json:"object"`
				Choices []struct {
					Delta struct {
						Role    string `json:"role"`
						Content string `json:"content"`
					} `json:"delta"`
					FinishReason *string `json:"finish_reason"`
				} `json:"choices"`
			}
			decode(t, []byte(ev.data), &ch)
			if ch.Object != "chat.completion.chunk" || len(ch.Choices) != 1 {
				t.Fatalf("chunk %d = %s", i, ev.data)
			}
			text.WriteString(ch.Choices[0].Delta.Content)
			if (i == len(events)-2) != (ch.Choices[0].FinishReason != nil) {
				t.Errorf("chunk %d finish_reason %v", i, ch.Choices[0].FinishReason)
			}
		}
		if text.String() != ReplyText(5) {
			t.Errorf("text = %q", text.String())
		}
		if err := s.WaitIdle(context.Background()); err != nil {
			t.Fatal(err)
		}
		if l := s.Log("sk-oa", 1); len(l) != 1 || !l[0].Completed || l[0].UsageReported {
			t.Errorf("log = %+v", l)
		}
	})

	t.Run("stream with include_usage ends with a usage chunk", func(t *testing.T) {
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/chat/completions", "", chatBody+`,"stream":true,"stream_options":{"include_usage":true}}`,
			map[string]string{"Authorization": "Bearer sk-oa", "Anthropic-Version": ""})
		events, err := readSSE(resp.Body)
		resp.Body.Close()
		if err != nil || len(events) != 5+4 || events[len(events)-1].data != "[DONE]" {
			t.Fatalf("%d events, %v", len(events), err)
		}
		for _, ev := range events[:len(events)-2] {
			if !strings.Contains(ev.data, `"usage":null`) {
				t.Errorf("chunk without usage:null: %s", ev.data)
			}
		}
		var last struct {
			Choices []any     `json:"choices"`
			Usage   chatUsage `json:"usage"`
		}
		decode(t, []byte(events[len(events)-2].data), &last)
		if last.Choices == nil || len(last.Choices) != 0 || last.Usage.PromptTokens != wantPrompt || last.Usage.CompletionTokens != fixedUsage.Output {
			t.Errorf("usage chunk = %s", events[len(events)-2].data)
		}
	})

	if err := s.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats("sk-oa"); st.Completed != 2 || st.Usage != reported.Add(reported) {
		t.Errorf("stats = %+v, want 2 completed with %+v each", st, reported)
	}
}

func TestOpenAIResponses(t *testing.T) {
	s := mustStart(t, Options{})
	if err := s.SetScript("sk-r", Script{Usage: &fixedUsage, Events: 3}); err != nil {
		t.Fatal(err)
	}
	body := `{"model":"gpt-6.1-sol","instructions":"be brief","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}],"store":false`
	type respUsage struct {
		InputTokens        int64 `json:"input_tokens"`
		InputTokensDetails struct {
			CachedTokens int64 `json:"cached_tokens"`
		} `json:"input_tokens_details"`
		OutputTokens int64 `json:"output_tokens"`
		TotalTokens  int64 `json:"total_tokens"`
	}
	type response struct {
		ID     string `json:"id"`
		Object string `json:"object"`
		Status string `json:"status"`
		Output []struct {
			Type    string `json:"type"`
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		} `json:"output"`
		Usage respUsage `json:"usage"`
	}
	check := func(t *testing.T, r response) {
		t.Helper()
		if !strings.HasPrefix(r.ID, "resp_") || r.Object != "response" || r.Status != "completed" || len(r.Output) != 1 ||
			len(r.Output[0].Content) != 1 || r.Output[0].Content[0].Text != ReplyText(3) {
			t.Errorf("response = %+v", r)
		}
		if u := r.Usage; u.InputTokens != fixedUsage.Input+fixedUsage.CacheRead || u.InputTokensDetails.CachedTokens != fixedUsage.CacheRead ||
			u.OutputTokens != fixedUsage.Output || u.TotalTokens != u.InputTokens+u.OutputTokens {
			t.Errorf("usage = %+v", u)
		}
	}

	t.Run("json", func(t *testing.T) {
		b, code, _ := openaiCall(t, s, "POST", "/v1/responses", "sk-r", body+`}`)
		if code != 200 {
			t.Fatalf("status %d: %s", code, b)
		}
		var r response
		decode(t, b, &r)
		check(t, r)
	})

	t.Run("stream", func(t *testing.T) {
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/responses", "", body+`,"stream":true}`,
			map[string]string{"Authorization": "Bearer sk-r", "Anthropic-Version": ""})
		events, err := readSSE(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := "response.created,response.in_progress,response.output_item.added,response.content_part.added," +
			"response.output_text.delta,response.output_text.delta,response.output_text.delta,response.output_text.done," +
			"response.content_part.done,response.output_item.done,response.completed"
		var names []string
		var text strings.Builder
		for i, ev := range events {
			names = append(names, ev.name)
			var d struct {
				Type     string `json:"type"`
				Seq      int    `json:"sequence_number"`
				Delta    string `json:"delta"`
				Text     string `json:"text"`
				Response *response
			}
			decode(t, []byte(ev.data), &d)
			if d.Type != ev.name || d.Seq != i {
				t.Errorf("event %d: type %q seq %d", i, d.Type, d.Seq)
			}
			text.WriteString(d.Delta)
			if ev.name == "response.output_text.done" && d.Text != ReplyText(3) {
				t.Errorf("done text = %q", d.Text)
			}
			if ev.name == "response.completed" {
				check(t, *d.Response)
			}
		}
		if strings.Join(names, ",") != want {
			t.Errorf("events = %v", names)
		}
		if text.String() != ReplyText(3) {
			t.Errorf("deltas = %q", text.String())
		}
	})

	t.Run("mid-stream failure is response.failed", func(t *testing.T) {
		if err := s.SetScript("sk-rf", Script{Fail: &Failure{Kind: FailError, After: 2, ErrorType: "rate_limit_exceeded"}}); err != nil {
			t.Fatal(err)
		}
		resp := call(t, context.Background(), "POST", s.URL()+"/v1/responses", "", body+`,"stream":true}`,
			map[string]string{"Authorization": "Bearer sk-rf", "Anthropic-Version": ""})
		events, _ := readSSE(resp.Body)
		resp.Body.Close()
		if len(events) != 3 || events[2].name != "response.failed" {
			t.Fatalf("events = %+v", events)
		}
		var f struct {
			Seq      int `json:"sequence_number"`
			Response struct {
				Status string `json:"status"`
				Error  struct{ Code, Message string }
			} `json:"response"`
		}
		decode(t, []byte(events[2].data), &f)
		if f.Seq != 2 || f.Response.Status != "failed" || f.Response.Error.Code != "rate_limit_exceeded" || f.Response.Error.Message == "" {
			t.Errorf("response.failed = %s", events[2].data)
		}
	})

	t.Run("websocket upgrade is 426", func(t *testing.T) {
		resp := call(t, context.Background(), "GET", s.URL()+"/v1/responses", "", "",
			map[string]string{"Authorization": "Bearer sk-r", "Upgrade": "websocket", "Connection": "Upgrade", "Anthropic-Version": ""})
		readAll(t, resp)
		if resp.StatusCode != 426 {
			t.Errorf("status %d, want 426", resp.StatusCode)
		}
	})
}

func TestOpenAIErrorsAndModels(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := mustStart(t, Options{Now: func() time.Time { return now }})
	code := func(e openaiErrorBody) string {
		if e.Error.Code == nil {
			return "null"
		}
		return *e.Error.Code
	}

	b, status, _ := openaiCall(t, s, "POST", "/v1/chat/completions", "", chatBody+`}`)
	var e openaiErrorBody
	decode(t, b, &e)
	if status != 401 || e.Error.Type != "invalid_request_error" || e.Error.Message == "" {
		t.Errorf("no key: %d %s", status, b)
	}
	b, status, _ = openaiCall(t, s, "POST", "/v1/chat/completions", "k", `{"messages":[]}`)
	decode(t, b, &e)
	if status != 400 || e.Error.Type != "invalid_request_error" || !strings.Contains(e.Error.Message, "model") {
		t.Errorf("no model: %d %s", status, b)
	}

	for _, c := range []struct {
		f                  Failure
		status             int
		typ, code, message string
	}{
		{Failure{Status: 401}, 401, "invalid_request_error", "invalid_api_key", ""},
		{Failure{Status: 403}, 403, "request_forbidden", "unsupported_country_region_territory", ""},
		{Failure{Status: 429, RetryAfter: 90 * time.Second}, 429, "requests", "rate_limit_exceeded", "Please try again in 90s."},
		{Failure{Status: 429, ErrorType: "insufficient_quota"}, 429, "insufficient_quota", "insufficient_quota", "quota"},
		{Failure{Status: 500}, 500, "server_error", "null", ""},
		{Failure{Status: 503}, 503, "server_error", "null", "overloaded"},
	} {
		t.Run(strconv.Itoa(c.status)+c.typ, func(t *testing.T) {
			key := "oa-" + strconv.Itoa(c.status) + c.typ
			if err := s.SetScript(key, Script{Fail: &c.f}); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{"/v1/chat/completions", "/v1/responses"} {
				b, status, h := openaiCall(t, s, "POST", path, key, chatBody+`,"input":"hi"}`)
				var e openaiErrorBody
				decode(t, b, &e)
				if status != c.status || e.Error.Type != c.typ || code(e) != c.code || !strings.Contains(e.Error.Message, c.message) {
					t.Errorf("%s: %d %s", path, status, b)
				}
				if c.status == 429 && c.typ == "requests" {
					if h["retry-after"] != "90" || h["x-ratelimit-reset-requests"] != "1m30s" || h["x-ratelimit-remaining-requests"] != "0" ||
						h["x-codex-primary-reset-at"] != strconv.FormatInt(now.Unix()+90, 10) {
						t.Errorf("429 headers = %v", h)
					}
				}
			}
		})
	}

	b, status, _ = openaiCall(t, s, "GET", "/v1/models", "k", "")
	var list struct {
		Object string
		Data   []struct{ ID, Object, OwnedBy string }
	}
	decode(t, b, &list)
	if status != 200 || list.Object != "list" || len(list.Data) != 3 || list.Data[0].ID != "gpt-6.1-sol" || list.Data[0].Object != "model" {
		t.Errorf("OpenAI models: %d %s", status, b)
	}
	b, status, _ = openaiCall(t, s, "GET", "/v1/models/nope", "k", "")
	decode(t, b, &e)
	if status != 404 || code(e) != "model_not_found" {
		t.Errorf("unknown OpenAI model: %d %s", status, b)
	}
}
