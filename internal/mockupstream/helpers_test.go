package mockupstream

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// mustStart starts a mock on a free loopback port, closed when the test ends.
func mustStart(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := New(opts)
	if err := s.Start(); err != nil {
		tb.Fatalf("start mock: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// call sends one request with an x-api-key and anthropic-version unless headers say
// otherwise (a header mapped to "" is removed).
func call(tb testing.TB, ctx context.Context, method, url, key, body string, headers map[string]string) *http.Response {
	tb.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

// readAll reads and closes the body.
func readAll(tb testing.TB, resp *http.Response) []byte {
	tb.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read body: %v", err)
	}
	return b
}

func decode(tb testing.TB, b []byte, v any) {
	tb.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("decode %s: %v", b, err)
	}
}

type sseEvent struct {
	name string
	data string
}

// readSSE parses a whole event stream; it returns the events and the read error, if any.
func readSSE(r io.Reader) ([]sseEvent, error) {
	br := bufio.NewReader(r)
	var events []sseEvent
	for {
		ev, err := nextEvent(br)
		if err == io.EOF {
			return events, nil
		}
		if err != nil {
			return events, err
		}
		events = append(events, ev)
	}
}

// nextEvent reads one event; io.EOF when the stream ended cleanly between events.
func nextEvent(br *bufio.Reader) (sseEvent, error) {
	var cur sseEvent
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err == io.EOF && (line != "" || cur != (sseEvent{})) {
				err = io.ErrUnexpectedEOF
			}
			return cur, err
		}
		line = strings.TrimRight(line, "\r\n") // Gemini separates events with CRLF CRLF
		switch {
		case line == "":
			if cur != (sseEvent{}) {
				return cur, nil
			}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data += strings.TrimPrefix(line, "data: ")
		}
	}
}

// waitFor polls cond until it holds; it fails the test if it never does. It waits for
// the mock's handlers to finish, it does not assert anything about time.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// apiError is Anthropic's error body.
type apiError struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	RequestID string `json:"request_id"`
}

// wireUsage is the usage object of a message or message_start.
type wireUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	CacheCreation            struct {
		Ephemeral5m int64 `json:"ephemeral_5m_input_tokens"`
		Ephemeral1h int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
	OutputTokens int64 `json:"output_tokens"`
}

func (w wireUsage) usage() Usage {
	return Usage{Input: w.InputTokens, Output: w.OutputTokens, Cache5m: w.CacheCreation.Ephemeral5m,
		Cache1h: w.CacheCreation.Ephemeral1h, CacheRead: w.CacheReadInputTokens}
}

const simpleBody = `{"model":"claude-opus-5-5","max_tokens":1024,"messages":[{"role":"user","content":"hi"}]}`

func streamBody(extra string) string {
	return `{"model":"claude-opus-5-5","max_tokens":1024,"stream":true` + extra + `,"messages":[{"role":"user","content":"hi"}]}`
}
