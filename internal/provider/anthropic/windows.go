package anthropic

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fluxcode/fluxcode/internal/store"
)

// windowNames are the unified windows a subscription answer may report, as they appear in
// anthropic-ratelimit-unified-<name>-utilization (0–1), -reset (epoch seconds) and -status.
var windowNames = []string{"5h", "7d", "7d_oi", "overage"}

// Windows implements provider.WindowReader: a subscription (OAuth) answer's unified
// rate-limit headers, which say how much of each usage window is used and when it resets.
func (*Provider) Windows(h http.Header, now time.Time) (store.UsageWindows, bool) {
	w := store.UsageWindows{Status: strings.TrimSpace(h.Get("Anthropic-Ratelimit-Unified-Status")), UpdatedAt: now.UTC()}
	for _, name := range windowNames {
		prefix := "Anthropic-Ratelimit-Unified-" + name
		u, err := strconv.ParseFloat(strings.TrimSpace(h.Get(prefix+"-Utilization")), 64)
		if err != nil || u < 0 {
			continue
		}
		x := store.UsageWindow{Name: name, Utilization: u, Status: strings.TrimSpace(h.Get(prefix + "-Status"))}
		if sec, err := strconv.ParseInt(strings.TrimSpace(h.Get(prefix+"-Reset")), 10, 64); err == nil && sec > 0 {
			x.ResetsAt = time.Unix(sec, 0).UTC()
		}
		w.Windows = append(w.Windows, x)
	}
	if w.Status == "" && len(w.Windows) == 0 {
		return store.UsageWindows{}, false
	}
	return w, true
}
