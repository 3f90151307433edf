package app

import (
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/httpx"
)

// lockedWriter serialises writes, so log records and the one-off admin password line never
// interleave on the shared output.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// NewLogger builds the process logger from LOG_FORMAT, LOG_LEVEL and TZ. Every record logged
// with a request's context carries its request_id; every record names the node.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	loc := cfg.Location()
	opts := &slog.HandlerOptions{
		Level: cfg.SlogLevel(),
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
				a.Value = slog.TimeValue(a.Value.Time().In(loc).Truncate(time.Millisecond))
			}
			return a
		},
	}
	var h slog.Handler
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	logger := slog.New(httpx.NewLogHandler(h))
	if cfg.NodeName != "" {
		logger = logger.With("node", cfg.NodeName)
	}
	return logger
}
