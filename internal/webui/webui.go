// Package webui serves the web console: the single-page app built from web/ by Vite and
// embedded into the binary, so `go build` alone produces a binary that serves it. Building
// with the tag noconsole leaves the console out; the API and the gateway are unchanged.
package webui

import (
	"bytes"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// CSP is the console's Content-Security-Policy: scripts, styles and connections only from the
// gateway's own origin, no inline script or style, no plugins, no framing. The built app has
// no inline code (Vite emits external files), so nothing needs a nonce.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; " +
	"frame-ancestors 'none'; object-src 'none'"

// reserved are the path prefixes the console never answers, even where no route serves them:
// an API client must get its own JSON 404, not the app's index.html.
var reserved = []string{"/v1/", "/v1beta/", "/api/", "/health", "/metrics", "/debug/"}

// Reserved reports whether p belongs to the API, the gateway or the operations endpoints.
func Reserved(p string) bool {
	if p == "/v1" || p == "/v1beta" || p == "/api" {
		return true
	}
	for _, pre := range reserved {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

// handler serves files from the built app; a path that names no file gets index.html, so the
// app's own router handles deep links.
type handler struct {
	files    fs.FS
	index    []byte
	fallback http.Handler
}

// newHandler serves files; fallback answers reserved paths and non-GET methods. It returns
// nil when files holds no index.html (the app was not built).
func newHandler(files fs.FS, fallback http.Handler) http.Handler {
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		return nil
	}
	return &handler{files: files, index: index, fallback: fallback}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if Reserved(r.URL.Path) || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		h.fallback.ServeHTTP(w, r)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", CSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")

	name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
	if name != "" && name != "index.html" {
		if f, err := fs.ReadFile(h.files, name); err == nil {
			if strings.HasPrefix(name, "assets/") {
				// Vite names every asset by its content hash: a changed file has a new name.
				hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
			} else {
				hdr.Set("Cache-Control", "no-cache")
			}
			http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f))
			return
		}
		if strings.HasPrefix(name, "assets/") {
			// A missing asset is a 404, not the app: a stale page must not parse HTML as JS.
			http.NotFound(w, r)
			return
		}
	}
	hdr.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(h.index))
}
