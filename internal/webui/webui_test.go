package webui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func serve(h http.Handler, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

// TestHandler: files by name, index.html for the app's own routes, the fallback (the JSON
// 404) for every API, gateway and operations path, and the CSP on every console answer.
func TestHandler(t *testing.T) {
	files := fstest.MapFS{
		"index.html":         {Data: []byte("<!doctype html><div id=app></div>")},
		"assets/index-1.js":  {Data: []byte("console.log(1)")},
		"assets/index-1.css": {Data: []byte("body{}")},
		"favicon.svg":        {Data: []byte("<svg/>")},
	}
	fallback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})
	h := newHandler(files, fallback)

	for _, p := range []string{"/", "/login", "/admin/users", "/keys/12", "/index.html"} {
		rec := serve(h, "GET", p)
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), "id=app") {
			t.Errorf("GET %s: %d %q, want the app", p, rec.Code, rec.Body.String())
		}
		if rec.Header().Get("Content-Security-Policy") != CSP || rec.Header().Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s headers: %v", p, rec.Header())
		}
	}
	if !strings.Contains(CSP, "script-src 'self'") || strings.Contains(CSP, "unsafe-inline") || strings.Contains(CSP, "unsafe-eval") {
		t.Errorf("CSP is not strict: %s", CSP)
	}
	rec := serve(h, "GET", "/assets/index-1.js")
	if rec.Code != 200 || rec.Body.String() != "console.log(1)" || !strings.Contains(rec.Header().Get("Content-Type"), "javascript") ||
		!strings.Contains(rec.Header().Get("Cache-Control"), "immutable") {
		t.Errorf("asset: %d %v %q", rec.Code, rec.Header(), rec.Body.String())
	}
	if rec := serve(h, "GET", "/assets/gone-2.js"); rec.Code != 404 {
		t.Errorf("a missing asset: %d, want 404 (not the app)", rec.Code)
	}
	for _, p := range []string{"/v1/messages", "/v1", "/v1beta/models", "/api/v1/nope", "/api", "/health", "/health/live", "/metrics", "/debug/pprof/"} {
		if rec := serve(h, "GET", p); rec.Code != http.StatusTeapot {
			t.Errorf("GET %s: %d, want the fallback", p, rec.Code)
		}
	}
	if rec := serve(h, "POST", "/login"); rec.Code != http.StatusTeapot {
		t.Errorf("POST /login: %d, want the fallback", rec.Code)
	}
	if newHandler(fstest.MapFS{}, fallback) != nil {
		t.Error("a handler without index.html")
	}
}

// TestEmbeddedBuild: the binary carries a built app whose index.html loads only external
// scripts (the CSP forbids inline ones).
func TestEmbeddedBuild(t *testing.T) {
	if !Enabled {
		t.Skip("built with -tags noconsole")
	}
	fallback := http.NotFoundHandler()
	h := Handler(fallback)
	rec := serve(h, "GET", "/")
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, `<div id="app">`) {
		t.Fatalf("GET /: %d %q", rec.Code, body)
	}
	for _, chunk := range strings.Split(body, "<script")[1:] {
		if !strings.Contains(strings.SplitN(chunk, ">", 2)[0], "src=") {
			t.Errorf("inline script in index.html: <script%s", chunk)
		}
	}
}
