package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/fluxcode/fluxcode/internal/config"
)

// RouteRedisLogs sends go-redis's own log lines (failed dials while Redis is down, Sentinel
// failovers) into logger as records with component=go-redis, configured secrets scrubbed.
// Without it go-redis prints them to stderr, bypassing LOG_FORMAT and the log pipeline.
//
// go-redis keeps one logger for the whole process, so this is called once, when the process
// starts (cmd/fluxcode serve); app.Main leaves it alone, as tests run many nodes in one process.
func RouteRedisLogs(cfg config.Config, logger *slog.Logger) {
	goredis.SetLogger(&redisLog{log: logger, scrub: func(s string) string { return scrubSecrets(cfg, s) }})
}

// redisLog adapts slog to go-redis's Printf-style logger.
type redisLog struct {
	log   *slog.Logger
	scrub func(string) string
}

// routine go-redis messages that report normal operation rather than a problem.
var redisInfoPrefixes = []string{"sentinel: new master", "sentinel: selected addr", "sentinel: discovered new sentinel"}

func (l *redisLog) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	msg := strings.TrimSpace(l.scrub(fmt.Sprintf(format, v...)))
	msg = strings.TrimPrefix(msg, "redis: ")
	level := slog.LevelWarn
	for _, p := range redisInfoPrefixes {
		if strings.HasPrefix(msg, p) {
			level = slog.LevelInfo
		}
	}
	l.log.Log(ctx, level, msg, "component", "go-redis")
}
