package load

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/mockupstream"
)

func startMock(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(mockupstream.New(mockupstream.Options{LogSize: -1, RecordPerKey: -1}))
	t.Cleanup(srv.Close)
	return srv
}

// models are what each protocol's load names.
var models = map[string]string{Anthropic: "claude-sonnet-5-5", OpenAI: "gpt-6.1-sol", Gemini: "gemini-3.8-flash"}

func TestRunAgainstTheMock(t *testing.T) {
	srv := startMock(t)
	for _, protocol := range Protocols {
		t.Run(protocol, func(t *testing.T) { runAgainstTheMock(t, srv.URL, protocol) })
	}
}

func runAgainstTheMock(t *testing.T, url, protocol string) {
	for _, stream := range []bool{false, true} {
		res, err := Run(context.Background(), Config{
			URL: url, Protocol: protocol, Key: "k", Model: models[protocol], Stream: stream,
			Concurrency: 4, Warmup: 5 * time.Millisecond, Duration: 100 * time.Millisecond, MaxRequests: 100000,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Errors != 0 {
			t.Fatalf("stream=%v: %d errors, first: %s", stream, res.Errors, res.ErrorSample)
		}
		if res.Requests == 0 || res.Total < res.Requests || res.Total > 100000 {
			t.Errorf("stream=%v: requests %d of total %d (cap 100000)", stream, res.Requests, res.Total)
		}
		if !(res.P50 > 0 && res.P50 <= res.P90 && res.P90 <= res.P99) {
			t.Errorf("stream=%v: percentiles out of order: p50 %v p90 %v p99 %v", stream, res.P50, res.P90, res.P99)
		}
		if stream && !(res.TTFBP50 > 0 && res.TTFBP50 <= res.P50) {
			t.Errorf("stream TTFB p50 %v, want in (0, latency p50 %v]", res.TTFBP50, res.P50)
		}
		if !stream && res.TTFBP50 != 0 {
			t.Errorf("JSON run reported a TTFB %v", res.TTFBP50)
		}
	}
}

func TestRunCountsFailures(t *testing.T) {
	srv := startMock(t)
	res, err := Run(context.Background(), Config{
		URL: srv.URL, Key: "k", Model: "m", Concurrency: 2, Duration: 50 * time.Millisecond,
		MaxRequests: 50, System: "mock:fail=529",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Errors == 0 || !strings.Contains(res.ErrorSample, "status 529") {
		t.Errorf("all-529 run: requests %d errors %d sample %q; want only errors naming 529", res.Requests, res.Errors, res.ErrorSample)
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	_, err := Run(context.Background(), Config{URL: "http://192.0.2.1:80", Concurrency: 1, Duration: time.Second})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("err = %v, want a loopback refusal", err)
	}
}

func TestCheck(t *testing.T) {
	if err := check(Anthropic, 200, true, []byte("event: message_start\n\nevent: message_stop\ndata: {}\n\n")); err != nil {
		t.Errorf("complete stream rejected: %v", err)
	}
	if err := check(Anthropic, 200, true, []byte("event: message_start\n\n")); err == nil {
		t.Error("cut stream accepted")
	}
	if err := check("", 200, false, []byte(`{"id":"x","type":"message","usage":{}}`)); err != nil {
		t.Errorf("JSON message rejected: %v", err)
	}
	if err := check(Anthropic, 429, false, []byte(`{"type":"error"}`)); err == nil {
		t.Error("429 accepted")
	}
	if err := check(OpenAI, 200, true, []byte("event: response.created\ndata: {}\n\n")); err == nil {
		t.Error("OpenAI stream without response.completed accepted")
	}
	if err := check(Gemini, 200, false, []byte(`{"candidates":[{"content":{}}]}`)); err == nil {
		t.Error("Gemini answer without usageMetadata accepted")
	}
}

func TestHoldOpensSlowStreams(t *testing.T) {
	srv := startMock(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan int, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Hold(ctx, Config{URL: srv.URL, Key: "k", Model: "m", System: "mock:events=1000,interval=50ms"}, 20,
			func(open int, firstErr error) {
				if firstErr != nil {
					t.Errorf("hold: %v", firstErr)
				}
				got <- open
			})
	}()
	if open := <-got; open != 20 {
		t.Errorf("open streams = %d, want 20", open)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
