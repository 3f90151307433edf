//go:build !noconsole

package webui

import (
	"embed"
	"io/fs"
	"net/http"
)

// dist is web/dist, copied here by `npm run build` in web/ (committed, so Go alone builds).
//
//go:embed all:dist
var dist embed.FS

// Enabled reports whether this binary carries the console.
const Enabled = true

// Handler serves the console and hands reserved paths and other methods to fallback.
func Handler(fallback http.Handler) http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return fallback
	}
	if h := newHandler(sub, fallback); h != nil {
		return h
	}
	return fallback
}
