//go:build noconsole

package webui

import "net/http"

// Enabled reports whether this binary carries the console.
const Enabled = false

// Handler returns fallback: this binary was built without the console.
func Handler(fallback http.Handler) http.Handler { return fallback }
