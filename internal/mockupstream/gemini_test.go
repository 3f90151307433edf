package mockupstream

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// geminiCall sends a Gemini request; auth is "header", "query" or "bearer".
func geminiCall(t *testing.T, s *Server, method, path, key, auth, body string) ([]byte, int) {
	t.Helper()
	h := map[string]string{"Anthropic-Version": ""}
	switch auth {
	case "header":
		h["X-Goog-Api-Key"] = key
	case "bearer":
		h["Authorization"] = "Bearer " + key
	case "query":
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "key=" + key
	}
	resp := call(t, context.Background(), method, s.URL()+path, "", body, h)
	return readAll(t, resp), resp.StatusCode
}

type geminiResponse struct {
	Candidates []struct {
		Content struct {
			Role  string `json:"role"`
			Parts []struct {
				Text string `json:"text"`
			} `json:"parts"`
		} `json:"content"`
		FinishReason string `json:"finishReason"`
	} `json:"candidates"`
	UsageMetadata struct {
		PromptTokenCount        int64  `json:"promptTokenCount"`
		CandidatesTokenCount    *int64 `json:"candidatesTokenCount"`
		CachedContentTokenCount int64  `json:"cachedContentTokenCount"`
		TotalTokenCount         int64  `json:"totalTokenCount"`
	} `json:"usageMetadata"`
	ModelVersion string `json:"modelVersion"`
	ResponseID   string `json:"responseId"`
}

type googleError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type       string `json:"@type"`
			Reason     string `json:"reason"`
			RetryDelay string `json:"retryDelay"`
		} `json:"details"`
	} `json:"error"`
}

const geminiBody = `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":500}}`

func TestGeminiGenerate(t *testing.T) {
	s := mustStart(t, Options{})
	if err := s.SetScript("g-key", Script{Usage: &fixedUsage, Events: 4}); err != nil {
		t.Fatal(err)
	}
	prompt := fixedUsage.Input + fixedUsage.CacheRead
	checkFinal := func(t *testing.T, r geminiResponse, text string) {
		t.Helper()
		u := r.UsageMetadata
		if len(r.Candidates) != 1 || r.Candidates[0].FinishReason != "STOP" || r.Candidates[0].Content.Role != "model" ||
			r.Candidates[0].Content.Parts[0].Text != text || r.ModelVersion != "gemini-3.8-flash" || r.ResponseID == "" {
			t.Errorf("response = %+v", r)
		}
		if u.PromptTokenCount != prompt || u.CandidatesTokenCount == nil || *u.CandidatesTokenCount != fixedUsage.Output ||
			u.CachedContentTokenCount != fixedUsage.CacheRead || u.TotalTokenCount != prompt+fixedUsage.Output {
			t.Errorf("usageMetadata = %+v", u)
		}
	}

	t.Run("generateContent with x-goog-api-key", func(t *testing.T) {
		b, code := geminiCall(t, s, "POST", "/v1beta/models/gemini-3.8-flash:generateContent", "g-key", "header", geminiBody)
		if code != 200 {
			t.Fatalf("status %d: %s", code, b)
		}
		var r geminiResponse
		decode(t, b, &r)
		checkFinal(t, r, ReplyText(4))
	})

	t.Run("streamGenerateContent alt=sse with ?key=", func(t *testing.T) {
		path := "/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse"
		b, code := geminiCall(t, s, "POST", path, "g-key", "query", geminiBody)
		if code != 200 || strings.Contains(string(b), "event:") || strings.Count(string(b), "\r\n\r\n") != 4 {
			t.Fatalf("status %d, body %q", code, b)
		}
		events, err := readSSE(strings.NewReader(string(b)))
		if err != nil || len(events) != 4 {
			t.Fatalf("%d events, %v", len(events), err)
		}
		var text strings.Builder
		for i, ev := range events {
			var r geminiResponse
			decode(t, []byte(ev.data), &r)
			text.WriteString(r.Candidates[0].Content.Parts[0].Text)
			if i < 3 && (r.Candidates[0].FinishReason != "" || r.UsageMetadata.CandidatesTokenCount != nil ||
				r.UsageMetadata.PromptTokenCount != prompt) {
				t.Errorf("chunk %d = %s", i, ev.data)
			}
			if i == 3 {
				r.Candidates[0].Content.Parts[0].Text = text.String()
				checkFinal(t, r, ReplyText(4))
			}
		}
		reqs := s.Requests("g-key", 1)
		if len(reqs) != 1 || reqs[0].RawQuery != "alt=sse&key=g-key" {
			t.Errorf("recorded query = %+v", reqs)
		}
	})

	t.Run("streamGenerateContent without alt is one JSON array", func(t *testing.T) {
		b, code := geminiCall(t, s, "POST", "/v1beta/models/gemini-3.8-flash:streamGenerateContent", "g-key", "bearer", geminiBody)
		var chunks []geminiResponse
		decode(t, b, &chunks)
		if code != 200 || len(chunks) != 4 || chunks[3].Candidates[0].FinishReason != "STOP" {
			t.Errorf("status %d: %s", code, b)
		}
	})

	t.Run("countTokens, plain and wrapped", func(t *testing.T) {
		for _, body := range []string{geminiBody, `{"generateContentRequest":{"model":"models/gemini-3.8-flash",` + geminiBody[1:] + `}`} {
			b, code := geminiCall(t, s, "POST", "/v1beta/models/gemini-3.8-flash:countTokens", "g-key", "header", body)
			var c struct{ TotalTokens int64 }
			decode(t, b, &c)
			if code != 200 || c.TotalTokens != prompt {
				t.Errorf("countTokens %s: %d %s", body, code, b)
			}
		}
	})

	t.Run("v1 path", func(t *testing.T) {
		b, code := geminiCall(t, s, "POST", "/v1/models/gemini-3.8-flash:generateContent", "g-key", "header", geminiBody)
		if code != 200 || !strings.Contains(string(b), `"finishReason":"STOP"`) {
			t.Errorf("status %d: %s", code, b)
		}
	})

	if err := s.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
	reported := Usage{Input: fixedUsage.Input, Output: fixedUsage.Output, CacheRead: fixedUsage.CacheRead}
	if st := s.Stats("g-key"); st.Completed != 4 || st.Usage != reported.Add(reported).Add(reported).Add(reported) {
		t.Errorf("stats = %+v", st)
	}
}

func TestGeminiErrors(t *testing.T) {
	s := mustStart(t, Options{Now: func() time.Time { return time.Unix(1_800_000_000, 0) }})
	decodeErr := func(t *testing.T, b []byte) googleError {
		var e googleError
		decode(t, b, &e)
		return e
	}
	t.Run("no key", func(t *testing.T) {
		b, code := geminiCall(t, s, "POST", "/v1beta/models/m:generateContent", "", "", geminiBody)
		if e := decodeErr(t, b); code != 403 || e.Error.Status != "PERMISSION_DENIED" || e.Error.Code != 403 {
			t.Errorf("%d %s", code, b)
		}
	})
	t.Run("no contents", func(t *testing.T) {
		b, code := geminiCall(t, s, "POST", "/v1beta/models/m:generateContent", "k", "header", `{"contents":[]}`)
		if e := decodeErr(t, b); code != 400 || e.Error.Status != "INVALID_ARGUMENT" || !strings.Contains(e.Error.Message, "contents") {
			t.Errorf("%d %s", code, b)
		}
	})
	for _, c := range []struct {
		f            Failure
		status       int
		word, detail string
	}{
		{Failure{Status: 400, ErrorType: "API_KEY_INVALID"}, 400, "INVALID_ARGUMENT", "API_KEY_INVALID"},
		{Failure{Status: 429, RetryAfter: 37 * time.Second}, 429, "RESOURCE_EXHAUSTED", "37s"},
		{Failure{Status: 503}, 503, "UNAVAILABLE", ""},
		{Failure{Status: 500}, 500, "INTERNAL", ""},
	} {
		t.Run(strconv.Itoa(c.status)+c.word, func(t *testing.T) {
			key := "g-" + strconv.Itoa(c.status)
			if err := s.SetScript(key, Script{Fail: &c.f}); err != nil {
				t.Fatal(err)
			}
			b, code := geminiCall(t, s, "POST", "/v1beta/models/m:streamGenerateContent?alt=sse", key, "header", geminiBody)
			e := decodeErr(t, b)
			if code != c.status || e.Error.Code != c.status || e.Error.Status != c.word || e.Error.Message == "" {
				t.Errorf("%d %s", code, b)
			}
			var found bool
			for _, d := range e.Error.Details {
				found = found || d.Reason == c.detail || d.RetryDelay == c.detail
			}
			if c.detail != "" && !found {
				t.Errorf("details lack %q: %s", c.detail, b)
			}
		})
	}
	t.Run("mid-stream error", func(t *testing.T) {
		if err := s.SetScript("g-mid", Script{Events: 5, Fail: &Failure{Kind: FailError, After: 2}}); err != nil {
			t.Fatal(err)
		}
		b, code := geminiCall(t, s, "POST", "/v1beta/models/m:streamGenerateContent?alt=sse", "g-mid", "header", geminiBody)
		events, _ := readSSE(strings.NewReader(string(b)))
		if code != 200 || len(events) != 3 {
			t.Fatalf("%d %q", code, b)
		}
		if e := decodeErr(t, []byte(events[2].data)); e.Error.Status != "UNAVAILABLE" || e.Error.Code != 503 {
			t.Errorf("error chunk = %s", events[2].data)
		}
	})
	t.Run("mid-stream error in an array stream", func(t *testing.T) {
		if err := s.SetScript("g-mid-array", Script{Events: 5, Fail: &Failure{Kind: FailError, After: 2}}); err != nil {
			t.Fatal(err)
		}
		b, code := geminiCall(t, s, "POST", "/v1beta/models/m:streamGenerateContent", "g-mid-array", "header", geminiBody)
		var elems []json.RawMessage
		if err := json.Unmarshal(b, &elems); err != nil || code != 200 || len(elems) != 3 ||
			!strings.HasPrefix(string(b), "[{") || strings.Count(string(b), "\n,\r\n") != 2 || !strings.HasSuffix(string(b), "\n]") {
			t.Fatalf("%d %q", code, b)
		}
		if e := decodeErr(t, []byte(elems[2])); e.Error.Status != "UNAVAILABLE" || e.Error.Code != 503 {
			t.Errorf("error element = %s", elems[2])
		}
	})
	t.Run("directive in systemInstruction", func(t *testing.T) {
		body := `{"systemInstruction":{"parts":[{"text":"mock:fail=503"}]},` + geminiBody[1:]
		b, code := geminiCall(t, s, "POST", "/v1beta/models/m:generateContent", "g-dir", "header", body)
		if code != 503 {
			t.Errorf("%d %s", code, b)
		}
	})
}

func TestGeminiModels(t *testing.T) {
	s := mustStart(t, Options{})
	var page struct {
		Models []struct {
			Name            string `json:"name"`
			InputTokenLimit int64  `json:"inputTokenLimit"`
		} `json:"models"`
		NextPageToken string `json:"nextPageToken"`
	}
	b, code := geminiCall(t, s, "GET", "/v1beta/models?pageSize=2", "k", "query", "")
	decode(t, b, &page)
	if code != 200 || len(page.Models) != 2 || page.Models[0].Name != "models/gemini-3.8-flash" || page.NextPageToken != "2" {
		t.Fatalf("%d %s", code, b)
	}
	b, _ = geminiCall(t, s, "GET", "/v1beta/models?pageSize=2&pageToken=2", "k", "query", "")
	page.NextPageToken = ""
	decode(t, b, &page)
	if len(page.Models) != 1 || page.Models[0].Name != "models/gemini-3.1-pro-preview" || page.NextPageToken != "" {
		t.Errorf("second page: %s", b)
	}
	b, code = geminiCall(t, s, "GET", "/v1beta/models/gemini-3.5-flash-lite", "k", "header", "")
	if code != 200 || !strings.Contains(string(b), `"name":"models/gemini-3.5-flash-lite"`) {
		t.Errorf("%d %s", code, b)
	}
	b, code = geminiCall(t, s, "GET", "/v1beta/models/nope", "k", "header", "")
	if code != 404 || !strings.Contains(string(b), `"NOT_FOUND"`) {
		t.Errorf("%d %s", code, b)
	}
}

// TestGeminiRevokedAndThoughts: a revoked key gets Google's answer for a bad key (400
// INVALID_ARGUMENT with ErrorInfo API_KEY_INVALID, not 401), on every endpoint; a request
// that turns thinking on gets part of its output as thoughtsTokenCount, apart from the
// candidates, the two adding up to the output the mock books.
func TestGeminiRevokedAndThoughts(t *testing.T) {
	s := mustStart(t, Options{})
	if err := s.SetScript("g-revoked", Script{Revoked: true}); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"GET", "/v1beta/models"}, {"POST", "/v1beta/models/m:generateContent"}} {
		b, code := geminiCall(t, s, c[0], c[1], "g-revoked", "header", geminiBody)
		var e googleError
		decode(t, b, &e)
		if code != 400 || e.Error.Status != "INVALID_ARGUMENT" || len(e.Error.Details) != 1 || e.Error.Details[0].Reason != "API_KEY_INVALID" {
			t.Errorf("%s %s: %d %s", c[0], c[1], code, b)
		}
	}

	if err := s.SetScript("g-think", Script{Usage: &fixedUsage}); err != nil {
		t.Fatal(err)
	}
	body := `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"thinkingConfig":{"thinkingBudget":1024}}}`
	b, code := geminiCall(t, s, "POST", "/v1beta/models/m:generateContent", "g-think", "header", body)
	var r struct {
		UsageMetadata struct {
			Candidates int64 `json:"candidatesTokenCount"`
			Thoughts   int64 `json:"thoughtsTokenCount"`
		} `json:"usageMetadata"`
	}
	decode(t, b, &r)
	if u := r.UsageMetadata; code != 200 || u.Thoughts != fixedUsage.Output/3 || u.Candidates+u.Thoughts != fixedUsage.Output {
		t.Errorf("%d %s", code, b)
	}
}
