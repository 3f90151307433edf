package mockupstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"
)

// ctl calls a control endpoint and decodes its JSON answer into out (when not nil).
func ctl(t *testing.T, s *Server, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b := readAll(t, resp)
	if out != nil && resp.StatusCode == 200 {
		decode(t, b, out)
	}
	return resp.StatusCode
}

func TestControlOverHTTP(t *testing.T) {
	s := mustStart(t, Options{})
	ctx := context.Background()

	if code := ctl(t, s, "POST", "/_mock/script",
		`{"key":"k","script":{"usage":{"input":5,"output":6,"cache_5m":7,"cache_1h":8,"cache_read":9},"events":3,"interval":"1ms","fail":{"status":529},"fail_times":1}}`, nil); code != 200 {
		t.Fatalf("set script: %d", code)
	}
	for _, bad := range []string{
		`{"key":"k","script":{"fail":{"status":200}}}`,
		`{"key":"k","script":{"evnts":3}}`,
		`{"script":{}}`,
		`{"key":"k","script":{"latency":"soon"}}`,
	} {
		if code := ctl(t, s, "POST", "/_mock/script", bad, nil); code != 400 {
			t.Errorf("script %s: status %d, want 400", bad, code)
		}
	}

	resp := call(t, ctx, "POST", s.URL()+"/v1/messages", "k", simpleBody, nil)
	readAll(t, resp)
	if resp.StatusCode != 529 {
		t.Errorf("first request: %d, want the scripted 529", resp.StatusCode)
	}
	resp = call(t, ctx, "POST", s.URL()+"/v1/messages", "k", simpleBody, map[string]string{"X-Custom": "v"})
	readAll(t, resp)
	okID := resp.Header.Get("request-id")
	if resp.StatusCode != 200 {
		t.Errorf("second request: %d", resp.StatusCode)
	}
	if code := ctl(t, s, "GET", "/_mock/idle", "", nil); code != 200 {
		t.Fatalf("idle: %d", code)
	}

	var st Stats
	ctl(t, s, "GET", "/_mock/stats?key=k", "", &st)
	if want := (Stats{Requests: 2, PeakInFlight: 1, Errors: 1, Failures: 1, Completed: 1,
		Usage: Usage{Input: 5, Output: 6, Cache5m: 7, Cache1h: 8, CacheRead: 9}}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	var all map[string]Stats
	ctl(t, s, "GET", "/_mock/stats", "", &all)
	if len(all) != 1 || all["k"] != st {
		t.Errorf("all stats = %+v", all)
	}

	var log []LogEntry
	ctl(t, s, "GET", "/_mock/log?key=k&n=1", "", &log)
	if len(log) != 1 || log[0].RequestID != okID || !log[0].UsageReported || log[0].Usage.CacheRead != 9 {
		t.Errorf("log = %+v", log)
	}

	var reqs []RecordedRequestJSON
	ctl(t, s, "GET", "/_mock/requests?key=k&n=1", "", &reqs)
	sum := sha256.Sum256([]byte(simpleBody))
	if len(reqs) != 1 || reqs[0].Body != simpleBody || reqs[0].BodySHA256 != hex.EncodeToString(sum[:]) ||
		reqs[0].Header.Get("X-Custom") != "v" || reqs[0].RequestID != okID {
		t.Errorf("requests = %+v", reqs)
	}

	if code := ctl(t, s, "POST", "/_mock/reset?key=k&peak=1", "", nil); code != 200 {
		t.Fatal(code)
	}
	ctl(t, s, "GET", "/_mock/stats?key=k", "", &st)
	if st.PeakInFlight != 0 || st.Requests != 2 {
		t.Errorf("after peak reset: %+v", st)
	}

	if code := ctl(t, s, "POST", "/_mock/script", `{"default":true,"script":{"fail":{"kind":"status","status":403}}}`, nil); code != 200 {
		t.Fatal(code)
	}
	resp = call(t, ctx, "POST", s.URL()+"/v1/messages", "other", simpleBody, nil)
	readAll(t, resp)
	if resp.StatusCode != 403 {
		t.Errorf("default script: %d, want 403", resp.StatusCode)
	}

	if code := ctl(t, s, "POST", "/_mock/reset", "", nil); code != 200 {
		t.Fatal(code)
	}
	ctl(t, s, "GET", "/_mock/stats?key=k", "", &st)
	ctl(t, s, "GET", "/_mock/log", "", &log)
	if st != (Stats{}) || len(log) != 0 || len(s.Requests("k", 0)) != 0 {
		t.Errorf("after reset: stats %+v, %d log entries", st, len(log))
	}
	resp = call(t, ctx, "POST", s.URL()+"/v1/messages", "other", simpleBody, nil)
	readAll(t, resp)
	if resp.StatusCode != 200 {
		t.Errorf("after reset the default script is gone: %d", resp.StatusCode)
	}
	if code := ctl(t, s, "GET", "/_mock/nothing", "", nil); code != 404 {
		t.Errorf("unknown control path: %d", code)
	}
}

func TestScriptJSONRoundTrip(t *testing.T) {
	in := Script{Latency: 1500e6, Events: 9, Interval: 2e6, Usage: &fixedUsage, Seed: 3, FailTimes: 2,
		Fail: &Failure{Kind: FailError, ErrorType: "api_error", Message: "m", After: 4, RetryAfter: 3e9,
			RateLimit: RateLimitUnified, NoRetryAfter: true}}
	b, err := in.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var out Script
	if err := out.UnmarshalJSON(b); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	if out.Latency != in.Latency || out.Events != in.Events || out.Interval != in.Interval || *out.Usage != *in.Usage ||
		out.Seed != in.Seed || out.FailTimes != in.FailTimes || *out.Fail != *in.Fail {
		t.Errorf("round trip of %s = %+v fail %+v", b, out, out.Fail)
	}
	if err := out.UnmarshalJSON([]byte(`{"latency":0.25}`)); err != nil || out.Latency != 250e6 {
		t.Errorf("latency as seconds: %v %v", out.Latency, err)
	}
}

// TestHoldModels: a held model list is counted and recorded at once and answered only on
// release, by the script in force then (a key revoked meanwhile gets its 401); other
// endpoints are not held.
func TestHoldModels(t *testing.T) {
	s := mustStart(t, Options{})
	if code := ctl(t, s, "POST", "/_mock/script", `{"key":"k","script":{"hold_models":true}}`, nil); code != 200 {
		t.Fatalf("set script: %d", code)
	}
	status := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", s.URL()+"/v1/models", nil)
		req.Header.Set("X-Api-Key", "k")
		req.Header.Set("Anthropic-Version", "2023-06-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			status <- -1
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats("k").InFlight != 1 || len(s.Requests("k", 0)) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the model list never arrived: %+v", s.Stats("k"))
		}
		time.Sleep(time.Millisecond)
	}
	resp := call(t, context.Background(), "POST", s.URL()+"/v1/messages", "k", simpleBody, nil)
	if readAll(t, resp); resp.StatusCode != 200 {
		t.Errorf("a message was held or failed: %d", resp.StatusCode)
	}
	if err := s.SetScript("k", Script{HoldModels: true, Revoked: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-status:
		t.Fatalf("the model list was answered (%d) before its release", code)
	default:
	}
	if code := ctl(t, s, "POST", "/_mock/release?key=k", "", nil); code != 200 {
		t.Fatalf("release: %d", code)
	}
	if code := <-status; code != http.StatusUnauthorized {
		t.Errorf("released model list: %d, want the revoked key's 401", code)
	}
}
