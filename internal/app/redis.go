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

// RedisOptions maps the REDIS_* variables onto the coordinator's options: one server (by URL
// or host), Sentinel (the Sentinels' addresses and the master's name) or Cluster (seed nodes).
func RedisOptions(cfg config.Config) redis.Options {
	opts := redis.Options{
		URL:          cfg.RedisURL,
		Password:     cfg.RedisPassword,
		DB:           cfg.RedisDB,
		PoolSize:     cfg.RedisPoolSize,
		MinIdleConns: cfg.RedisMinIdleConns,
	}
	switch cfg.RedisMode() {
	case config.RedisSentinel:
		opts.Addrs = cfg.RedisSentinelAddrs
		opts.MasterName = cfg.RedisMasterName
		opts.SentinelPassword = cfg.RedisSentinelPassword
	case config.RedisCluster:
		// Cluster even with one seed: the client must follow MOVED redirections.
		opts.Addrs = cfg.RedisClusterAddrs
		opts.Cluster = true
	default:
		if addr := cfg.RedisAddr(); addr != "" {
			opts.Addrs = []string{addr}
		}
	}
	return opts
}

// openRedis connects the cluster coordinator, retrying an unreachable Redis for
// connectPatience like the database.
func openRedis(ctx context.Context, cfg config.Config, logger *slog.Logger) (coord.Coordinator, error) {
	opts := RedisOptions(cfg)
	deadline := time.Now().Add(connectPatience)
	for {
		c, err := redis.New(ctx, opts)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, coord.ErrUnavailable) || time.Now().After(deadline) {
			return nil, fmt.Errorf("connect to Redis: %w", err)
		}
		logger.WarnContext(ctx, "Redis unreachable, retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to Redis: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
