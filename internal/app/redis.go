package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/coord/redis"
)

// openRedis connects the cluster coordinator, retrying an unreachable Redis for
// connectPatience like the database.
func openRedis(ctx context.Context, cfg config.Config, logger *slog.Logger) (coord.Coordinator, error) {
	opts := redis.Options{
		URL:          cfg.RedisURL,
		Password:     cfg.RedisPassword,
		DB:           cfg.RedisDB,
		PoolSize:     cfg.RedisPoolSize,
		MinIdleConns: cfg.RedisMinIdleConns,
	}
	if addr := cfg.RedisAddr(); addr != "" {
		opts.Addrs = []string{addr}
	}
	deadline := time.Now().Add(connectPatience)
	for {
		c, err := redis.New(ctx, opts)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, coord.ErrUnavailable) || time.Now().After(deadline) {
			return nil, fmt.Errorf("connect to Redis: %w", err)
		}
		logger.WarnContext(ctx, "Redis unreachable, retrying", "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to Redis: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
