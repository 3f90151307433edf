package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/coord/memory"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
)

// connectPatience is how long a starting node keeps retrying an unreachable PostgreSQL:
// on one host the database often starts at the same moment as the nodes.
const connectPatience = 30 * time.Second

// OpenStore opens the database of cfg's mode — SQLite in DATA_DIR, or PostgreSQL — and
// applies pending migrations (on PostgreSQL under an advisory lock, so N nodes starting
// together apply each once).
func OpenStore(ctx context.Context, cfg config.Config, keys *secret.Keys, logger *slog.Logger) (*sqlstore.DB, error) {
	sc := sqlstore.Config{
		DSN:          cfg.SQLitePath(),
		Driver:       sqlstore.DriverSQLite,
		MaxOpenConns: cfg.DatabaseMaxOpenConns,
		MaxIdleConns: cfg.DatabaseMaxIdleConns,
		SQLiteSync:   cfg.SQLiteSynchronous,
		Keys:         keys,
		Logger:       logger,
	}
	if cfg.Cluster() {
		sc.DSN, sc.Driver = cfg.PostgresDSN(), sqlstore.DriverPostgres
	}
	deadline := time.Now().Add(connectPatience)
	for {
		db, err := sqlstore.Open(ctx, sc)
		if err == nil {
			return db, nil
		}
		if !cfg.Cluster() || !unreachable(err) || time.Now().After(deadline) {
			return nil, fmt.Errorf("open the %s database: %w", dbKind(cfg), err)
		}
		logger.WarnContext(ctx, "database unreachable, retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("open the %s database: %w", dbKind(cfg), ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

func dbKind(cfg config.Config) string {
	if cfg.Cluster() {
		return "PostgreSQL"
	}
	return "SQLite"
}

// unreachable reports a failure worth retrying: the network, or a server that is starting
// up (as opposed to a wrong password or a broken migration, which retrying cannot fix).
func unreachable(err error) bool { return sqlstore.Unreachable(err) }

// OpenCoord opens the coordination backend of cfg's mode: in-process for a single node,
// Redis for a cluster.
func OpenCoord(ctx context.Context, cfg config.Config, logger *slog.Logger) (coord.Coordinator, error) {
	if !cfg.Cluster() {
		return memory.New(), nil
	}
	return openRedis(ctx, cfg, logger)
}

// urlPassword is the password in a URL, or "".
func urlPassword(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return ""
	}
	pw, _ := u.User.Password()
	return pw
}
