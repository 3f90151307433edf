package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/mockupstream"
)

// model is priced in the built-in table, so every answer costs something.
const model = "claude-sonnet-5-5"

// requestBound bounds one client request in the harness: it is not a speed claim, only
// there so that a hung request fails the test instead of hanging it.
const requestBound = 90 * time.Second

// shape is what a request asks the mock for, through a directive in its system text.
type shape struct {
	stream   bool
	events   int           // text deltas
	interval time.Duration // pause between stream events
}

func (s shape) body(n int) []byte {
	b, _ := json.Marshal(map[string]any{
		"model":      model,
		"max_tokens": 256,
		"stream":     s.stream,
		"system":     fmt.Sprintf("mock:events=%d,interval=%s", s.events, s.interval),
		"messages":   []map[string]string{{"role": "user", "content": fmt.Sprintf("cluster request %d", n)}},
	})
	return b
}

// outcome is what one client saw.
type outcome struct {
	base       string
	status     int
	requestID  string // X-Fluxcode-Request-Id: set when a FluxCode node answered
	complete   bool   // a whole answer: a JSON message, or a stream through message_stop
	errEvent   bool   // a stream that ended with one error event
	truncated  bool   // a stream that just ended at an event boundary, without message_stop
	cut        bool   // the connection broke (before or during the answer)
	corrupt    string // what was wrong with the answer, if anything
	errType    string // the Anthropic error type of a non-200 JSON answer
	retry      string // x-should-retry of a non-200 answer
	body       string // a non-200 answer's body, for messages
	start, end time.Time
}

func (o outcome) String() string {
	switch {
	case o.corrupt != "":
		return fmt.Sprintf("%s: CORRUPT %s (status %d, id %s)", o.base, o.corrupt, o.status, o.requestID)
	case o.complete:
		return fmt.Sprintf("%s: complete (id %s)", o.base, o.requestID)
	case o.errEvent:
		return fmt.Sprintf("%s: error event (id %s)", o.base, o.requestID)
	case o.truncated:
		return fmt.Sprintf("%s: truncated stream (id %s)", o.base, o.requestID)
	case o.cut:
		return fmt.Sprintf("%s: cut (status %d, id %s)", o.base, o.status, o.requestID)
	}
	return fmt.Sprintf("%s: %d %s %q", o.base, o.status, o.errType, o.body)
}

// send makes one /v1/messages request with key and reads the whole answer, checking it.
// started, if set, is called once the stream's message_start has arrived.
func send(ctx context.Context, client *http.Client, base, key string, s shape, n int, started func()) outcome {
	o := outcome{base: base, start: time.Now()}
	defer func() { o.end = time.Now() }()
	ctx, cancel := context.WithTimeout(ctx, requestBound)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/messages", bytes.NewReader(s.body(n)))
	if err != nil {
		o.corrupt = err.Error()
		return o
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("X-Api-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		o.cut = true
		o.end = time.Now()
		return o
	}
	defer resp.Body.Close()
	o.status = resp.StatusCode
	o.requestID = resp.Header.Get(gateway.HeaderRequestID)
	switch {
	case resp.StatusCode != http.StatusOK:
		o.retry = resp.Header.Get("X-Should-Retry")
		b, err := io.ReadAll(resp.Body)
		o.body = string(b)
		if err != nil {
			o.cut = true
		}
		o.errType = anthropicErrorType(b)
	case s.stream:
		readStream(&o, resp.Body, s.events, started)
	default:
		readMessage(&o, resp.Body, s.events)
	}
	o.end = time.Now()
	return o
}

// anthropicErrorType is the error type of an Anthropic error body, or "" when b is not one.
func anthropicErrorType(b []byte) string {
	var e struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil || e.Type != "error" || e.Error.Type == "" || e.Error.Message == "" {
		return ""
	}
	return e.Error.Type
}

func readMessage(o *outcome, body io.Reader, events int) {
	b, err := io.ReadAll(body)
	if err != nil {
		o.cut = true
		return
	}
	var m struct {
		Type    string `json:"type"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal(b, &m); err != nil || m.Type != "message" || len(m.Content) != 1 {
		o.corrupt = fmt.Sprintf("not one whole message: %.200q", b)
		return
	}
	if want := mockupstream.ReplyText(events); m.Content[0].Text != want {
		o.corrupt = fmt.Sprintf("text %q, want %q", m.Content[0].Text, want)
		return
	}
	o.complete = true
}

// readStream reads an event stream to its end and classifies it. A stream is sound when
// it is one message: pings anywhere, exactly one message_start before anything else, text
// that is always a prefix of the mock's reply, and nothing after message_stop or an error
// event. It may end with message_stop (complete), with one error event, by a broken
// connection, or just stop at an event boundary (truncated: a clean end, but not a whole
// answer).
func readStream(o *outcome, body io.Reader, events int, started func()) {
	want := mockupstream.ReplyText(events)
	var text strings.Builder
	var begun, done, errored bool
	check := func(name string, data []byte) error {
		if done || errored {
			return fmt.Errorf("event %q after the stream ended", name)
		}
		var ev struct {
			Type    string `json:"type"`
			Message struct {
				ID string `json:"id"`
			} `json:"message"`
			Delta struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"delta"`
		}
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("event %q: data %.200q is not JSON", name, data)
		}
		if ev.Type != name {
			return fmt.Errorf("event %q carries type %q", name, ev.Type)
		}
		switch name {
		case "ping":
			return nil
		case "error":
			errored = true
			return nil
		case "message_start":
			if begun {
				return errors.New("a second message_start: two answers mixed in one stream")
			}
			begun = true
			if started != nil {
				started()
			}
			return nil
		}
		if !begun {
			return fmt.Errorf("event %q before message_start", name)
		}
		switch name {
		case "content_block_delta":
			if ev.Delta.Type == "text_delta" {
				text.WriteString(ev.Delta.Text)
				if !strings.HasPrefix(want, text.String()) {
					return fmt.Errorf("text %q is not the mock's reply %q", text.String(), want)
				}
			}
		case "message_stop":
			if text.String() != want {
				return fmt.Errorf("message_stop after text %q, want %q", text.String(), want)
			}
			done = true
		}
		return nil
	}

	rd := bufio.NewReader(body)
	var name string
	var data []byte
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			switch {
			case done:
				o.complete = true
			case errored:
				o.errEvent = true
			case errors.Is(err, io.EOF) && len(line) == 0 && name == "" && data == nil:
				o.truncated = true
			default:
				o.cut = true
			}
			return
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if name == "" && data == nil {
				continue
			}
			if err := check(name, data); err != nil {
				o.corrupt = err.Error()
				io.Copy(io.Discard, rd)
				return
			}
			name, data = "", nil
		case bytes.HasPrefix(line, []byte("event:")):
			name = string(bytes.TrimSpace(line[len("event:"):]))
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimSpace(line[len("data:"):])...)
		case bytes.HasPrefix(line, []byte(":")):
			// an SSE comment
		default:
			o.corrupt = fmt.Sprintf("not an SSE line: %.200q", line)
			io.Copy(io.Discard, rd)
			return
		}
	}
}

// load is a set of clients sending requests at once.
type load struct {
	workers   int
	perWorker int                           // requests per worker; 0: until the context ends
	targets   []string                      // worker i sends to targets[i % len]
	shape     func(n int) shape             // the n-th request's shape
	client    func(worker int) *http.Client // nil: one shared client
}

// run sends the load with key and returns every outcome.
func (l load) run(ctx context.Context, key string) []outcome {
	shared := newClient()
	var mu sync.Mutex
	var outs []outcome
	var wg sync.WaitGroup
	var seq int
	next := func() int {
		mu.Lock()
		defer mu.Unlock()
		seq++
		return seq
	}
	for w := range l.workers {
		client := shared
		if l.client != nil {
			client = l.client(w)
		}
		base := l.targets[w%len(l.targets)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; l.perWorker == 0 || i < l.perWorker; i++ {
				if ctx.Err() != nil {
					return
				}
				n := next()
				o := send(context.WithoutCancel(ctx), client, base, key, l.shape(n), n, nil)
				mu.Lock()
				outs = append(outs, o)
				mu.Unlock()
				if !o.complete {
					time.Sleep(50 * time.Millisecond) // as a client backs off before a retry
				}
			}
		}()
	}
	wg.Wait()
	return outs
}

// newClient is an HTTP client with enough connections per host for the harness's load.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}}
}
