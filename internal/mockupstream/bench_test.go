package mockupstream

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// discardWriter is a minimal flushing ResponseWriter, so the handler benchmarks measure
// the mock and not a recorder's buffering.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) FlushError() error           { return nil }

func benchHandler(b *testing.B, body string) {
	s := New(Options{LogSize: -1, RecordPerKey: -1})
	req := httptest.NewRequest("POST", "/v1/messages", nil)
	req.Header.Set("X-Api-Key", "k")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		req.Body = io.NopCloser(strings.NewReader(body))
		req.ContentLength = int64(len(body))
		clear(w.h)
		s.ServeHTTP(w, req)
	}
}

func BenchmarkHandlerJSON(b *testing.B)   { benchHandler(b, simpleBody) }
func BenchmarkHandlerStream(b *testing.B) { benchHandler(b, streamBody("")) }

// BenchmarkLoopbackStream is the baseline a gateway benchmark compares against: parallel
// streaming requests over real loopback HTTP.
func BenchmarkLoopbackStream(b *testing.B) {
	s := mustStart(b, Options{})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	body := streamBody("")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("POST", s.URL()+"/v1/messages", strings.NewReader(body))
			req.Header.Set("X-Api-Key", "k")
			req.Header.Set("Anthropic-Version", "2023-06-01")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
