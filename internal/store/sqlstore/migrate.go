package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// migrateLockKey is the PostgreSQL advisory lock held while migrating, so that N nodes
// starting at once apply each migration exactly once: the first applies, the others wait
// and then find it recorded.
const migrateLockKey int64 = 0x466c7578_4d696772 // "FluxMigr"

// Migration is one row of schema_migrations.
type Migration struct {
	Version   string // the file name, e.g. "0001_init.sql"
	Checksum  string // SHA-256 of the file, hex
	AppliedAt time.Time
}

type migrationFile struct {
	version, checksum, body string
}

func (d *DB) migrationDir() string {
	if d.pg {
		return "migrations/postgres"
	}
	return "migrations/sqlite"
}

func (d *DB) loadMigrations() ([]migrationFile, error) {
	dir := d.migrationDir()
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: read migrations: %w", err)
	}
	var out []migrationFile
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := fs.ReadFile(migrationFiles, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("sqlstore: read migration %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		out = append(out, migrationFile{version: e.Name(), checksum: hex.EncodeToString(sum[:]), body: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// Migrate applies the embedded migrations that are not yet recorded, in name order, each in
// its own transaction together with its schema_migrations row, and returns the versions it
// applied. A recorded migration whose file has changed is an error: schema files are never
// edited once released, only added. Open calls Migrate unless Config.SkipMigrate is set.
func (d *DB) Migrate(ctx context.Context) (applied []string, err error) {
	files, err := d.loadMigrations()
	if err != nil {
		return nil, err
	}
	// One pinned connection: a PostgreSQL session lock belongs to the connection that took it.
	conn, err := d.w.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: migrate: connect: %w", err)
	}
	defer conn.Close()

	if d.pg {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
			return nil, fmt.Errorf("sqlstore: migrate: take advisory lock: %w", err)
		}
		defer func() {
			if _, uerr := conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockKey); uerr != nil {
				// Never hand a connection that may still hold the lock back to the pool.
				conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}

	create := `CREATE TABLE IF NOT EXISTS schema_migrations (
		version TEXT PRIMARY KEY, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL)`
	if d.pg {
		create = strings.Replace(create, "INTEGER", "TIMESTAMPTZ", 1)
	}
	if _, err := conn.ExecContext(ctx, create); err != nil {
		return nil, fmt.Errorf("sqlstore: migrate: create schema_migrations: %w", err)
	}

	for _, f := range files {
		did, err := d.applyMigration(ctx, conn, f)
		if err != nil {
			return applied, err
		}
		if did {
			applied = append(applied, f.version)
			d.log.InfoContext(ctx, "database migration applied", "version", f.version, "dialect", d.Dialect())
		}
	}
	return applied, nil
}

// applyMigration runs f unless it is recorded. The check is repeated inside the transaction:
// on SQLite another process may have applied it since (its write lock orders the two).
func (d *DB) applyMigration(ctx context.Context, conn *sql.Conn, f migrationFile) (bool, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("sqlstore: migrate %s: begin: %w", f.version, err)
	}
	defer tx.Rollback()

	var checksum string
	err = tx.QueryRowContext(ctx, "SELECT checksum FROM schema_migrations WHERE version = $1", f.version).Scan(&checksum)
	switch {
	case err == nil:
		if checksum != f.checksum {
			return false, fmt.Errorf("sqlstore: migration %s was changed after it was applied (recorded checksum %s, file %s)",
				f.version, checksum, f.checksum)
		}
		return false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return false, fmt.Errorf("sqlstore: migrate %s: read schema_migrations: %w", f.version, err)
	}

	if _, err := tx.ExecContext(ctx, f.body); err != nil {
		return false, fmt.Errorf("sqlstore: migrate %s: %w", f.version, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, checksum, applied_at) VALUES ($1, $2, $3)",
		f.version, f.checksum, d.tv(d.clock())); err != nil {
		return false, fmt.Errorf("sqlstore: migrate %s: record: %w", f.version, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("sqlstore: migrate %s: commit: %w", f.version, err)
	}
	return true, nil
}

// Migrations lists the recorded migrations in order.
func (d *DB) Migrations(ctx context.Context) ([]Migration, error) {
	rows, err := d.r.QueryContext(ctx, "SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, wrap("list migrations", err)
	}
	defer rows.Close()
	var out []Migration
	for rows.Next() {
		var m Migration
		if err := rows.Scan(&m.Version, &m.Checksum, timeDst{&m.AppliedAt}); err != nil {
			return nil, wrap("list migrations", err)
		}
		out = append(out, m)
	}
	return out, wrap("list migrations", rows.Err())
}
