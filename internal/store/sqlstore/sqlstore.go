// Package sqlstore implements store.Store on SQL: SQLite (modernc.org/sqlite, pure Go) for a
// single node and PostgreSQL (pgx through database/sql) for a cluster. Both dialects share the
// queries; the few places where they differ are spelled out next to each other.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Drivers accepted in Config.Driver.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Pool defaults used when Config leaves a size at zero.
const (
	defaultMaxOpenConns = 25
	defaultMaxIdleConns = 10
	// sqliteBusyTimeout is how long a SQLite connection waits for another writer (another
	// process on the same file, or a reader checkpointing) before failing with SQLITE_BUSY.
	sqliteBusyTimeout = 10 * time.Second
)

// SQLite synchronous settings (Config.SQLiteSync).
const (
	// SyncFull syncs the WAL to disk at every commit: a committed ledger row survives a
	// process kill, an operating-system crash and a power loss. The default.
	SyncFull = "full"
	// SyncNormal syncs only at checkpoints: a committed row survives the process being
	// killed (the WAL is in the operating system's cache), but an operating-system crash or
	// a power loss may lose the commits since the last checkpoint — answers whose clients
	// saw them complete, unbilled. It saves one sync per ledger commit.
	SyncNormal = "normal"
)

// Config says which database to open and how.
type Config struct {
	// Driver is DriverSQLite or DriverPostgres; empty means: guess from DSN
	// (postgres:// and postgresql:// are PostgreSQL, everything else is a SQLite path).
	Driver string
	// DSN is a PostgreSQL URL or key=value string ("host=… dbname=…"), or a SQLite file path ("data/fluxcode.db",
	// "file:data/fluxcode.db", "sqlite:data/fluxcode.db"). ":memory:" opens a private
	// temporary file that is removed on Close (a real in-memory database could not be shared
	// between the writer and the reader pools).
	DSN string
	// MaxOpenConns bounds the connections to PostgreSQL (per node), or the SQLite reader
	// pool; SQLite always writes through exactly one connection. 0 = 25.
	MaxOpenConns int
	// MaxIdleConns bounds idle connections kept open. 0 = min(10, MaxOpenConns).
	MaxIdleConns int
	// SQLiteSync is SQLite's synchronous setting: SyncFull (also when empty) or SyncNormal.
	// See SyncNormal for what it gives up.
	SQLiteSync string
	// Keys seals account credentials and proxy passwords. Required.
	Keys *secret.Keys
	// Now is the clock for timestamps. nil = time.Now.
	Now func() time.Time
	// Logger receives migration progress. nil = slog.Default().
	Logger *slog.Logger
	// SkipMigrate leaves the schema alone at Open (the caller runs Migrate itself).
	SkipMigrate bool
}

// DB is a store.Store on SQLite or PostgreSQL. Safe for concurrent use.
type DB struct {
	pg bool
	// w takes every write; on SQLite it holds one connection, so writers queue in Go instead
	// of failing with SQLITE_BUSY. r serves plain reads. On PostgreSQL both are one pool.
	w, r *sql.DB

	keys *secret.Keys
	now  func() time.Time
	log  *slog.Logger

	tempFile string // set for ":memory:": removed on Close
	// checkpoint copies SQLite's WAL into the database file (nil on PostgreSQL).
	checkpoint *checkpointer
	applied    []string

	statements statementCounter // PostgreSQL only

	keyAuthMu sync.Mutex
	keyAuth   *sql.Stmt // the gateway's hot path, prepared once

	ledger ledgerStmts // SQLite's billing statements, prepared once (billing.go)
}

var _ store.Store = (*DB)(nil)

// Open connects and migrates (unless cfg.SkipMigrate).
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.Keys == nil {
		return nil, errors.New("sqlstore: Config.Keys is required to seal credentials")
	}
	d := &DB{keys: cfg.Keys, now: cfg.Now, log: cfg.Logger}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	maxOpen := cfg.MaxOpenConns
	if maxOpen <= 0 {
		maxOpen = defaultMaxOpenConns
	}
	maxIdle := cfg.MaxIdleConns
	if maxIdle <= 0 {
		maxIdle = min(defaultMaxIdleConns, maxOpen)
	}

	driver := cfg.Driver
	if driver == "" {
		driver = guessDriver(cfg.DSN)
	}
	var err error
	switch driver {
	case DriverPostgres, "postgresql", "pgx":
		d.pg = true
		err = d.openPostgres(cfg.DSN, maxOpen, maxIdle)
	case DriverSQLite, "sqlite3":
		err = d.openSQLite(ctx, cfg.DSN, cfg.SQLiteSync, maxOpen, maxIdle)
	default:
		err = fmt.Errorf("sqlstore: unknown driver %q (want %s or %s)", driver, DriverSQLite, DriverPostgres)
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	if err := d.w.PingContext(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("sqlstore: connect: %w", err)
	}
	if !cfg.SkipMigrate {
		if d.applied, err = d.Migrate(ctx); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

func guessDriver(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") ||
		strings.Contains(dsn, "host=") || strings.Contains(dsn, "dbname=") { // key=value form
		return DriverPostgres
	}
	return DriverSQLite
}

func (d *DB) openPostgres(dsn string, maxOpen, maxIdle int) error {
	pc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("sqlstore: postgres DSN: %w", err)
	}
	pc.Tracer = &d.statements
	db := openPgPool(pc, maxOpen, maxIdle, d.warmConn, d.log)
	// Recycle connections now and then so a PostgreSQL failover or restart is picked up.
	db.SetConnMaxLifetime(30 * time.Minute)
	d.w, d.r = db, db
	return nil
}

func (d *DB) openSQLite(ctx context.Context, dsn, syncMode string, maxOpen, maxIdle int) error {
	path, err := sqlitePath(dsn)
	if err != nil {
		return err
	}
	var sync string
	switch syncMode {
	case "", SyncFull:
		sync = "FULL"
	case SyncNormal:
		sync = "NORMAL"
	default:
		return fmt.Errorf("sqlstore: SQLite synchronous setting %q (want %s or %s)", syncMode, SyncFull, SyncNormal)
	}
	if path == ":memory:" {
		f, err := os.CreateTemp("", "fluxcode-*.db")
		if err != nil {
			return fmt.Errorf("sqlstore: temporary database: %w", err)
		}
		f.Close()
		path, d.tempFile = f.Name(), f.Name()
	} else if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("sqlstore: create database directory: %w", err)
		}
	}
	// busy_timeout comes first so that switching to WAL waits for a concurrent opener
	// instead of failing; _txlock=immediate takes the write lock at BEGIN, so a transaction
	// that reads before writing cannot fail half-way when another process writes.
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	base := "file:" + (&url.URL{Path: path}).EscapedPath()

	// The writer never checkpoints (a checkpoint inside a ledger commit makes the answers
	// that wait for it slow); the checkpointer does, from a connection of its own.
	wq := url.Values{}
	for k, v := range q {
		wq[k] = slices.Clone(v)
	}
	wq.Add("_pragma", "wal_autocheckpoint(0)")
	w, err := sql.Open("sqlite", base+"?"+wq.Encode())
	if err != nil {
		return fmt.Errorf("sqlstore: open sqlite writer: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	d.w = w
	// Create the file and switch it to WAL before readers open it.
	if err := w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: open sqlite %s: %w", path, err)
	}

	cp, err := sql.Open("sqlite", base+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("sqlstore: open sqlite checkpointer: %w", err)
	}
	cp.SetMaxOpenConns(1)
	cp.SetMaxIdleConns(1)
	d.checkpoint = startCheckpointer(cp, d.log)

	q.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", base+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("sqlstore: open sqlite reader: %w", err)
	}
	r.SetMaxOpenConns(maxOpen)
	r.SetMaxIdleConns(maxIdle)
	d.r = r
	return nil
}

// sqlitePath strips the accepted URL forms down to a file path.
func sqlitePath(dsn string) (string, error) {
	p := dsn
	for _, prefix := range []string{"sqlite3://", "sqlite://", "sqlite3:", "sqlite:", "file://", "file:"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			p = rest
			break
		}
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if p == "" {
		return "", errors.New("sqlstore: empty SQLite path")
	}
	if p == ":memory:" {
		return ":memory:", nil
	}
	return p, nil
}

// statementCounter counts the statements sent to PostgreSQL, BEGIN and COMMIT included:
// statements per gateway request is a figure the cluster's capacity depends on.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Statements is how many statements this DB has sent to PostgreSQL (always 0 on SQLite).
func (d *DB) Statements() int64 { return d.statements.n.Load() }

// Dialect names the SQL dialect in use: DriverSQLite or DriverPostgres.
func (d *DB) Dialect() string {
	if d.pg {
		return DriverPostgres
	}
	return DriverSQLite
}

// Applied lists the migrations this Open applied (empty when another node or an earlier start
// had applied them all).
func (d *DB) Applied() []string { return append([]string(nil), d.applied...) }

// Ping answers nil when the database answers.
func (d *DB) Ping(ctx context.Context) error {
	if err := d.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	return nil
}

// Close closes the pools (and removes a ":memory:" temporary file).
func (d *DB) Close() error {
	var errs []error
	if d.keyAuth != nil {
		errs = append(errs, d.keyAuth.Close())
	}
	errs = append(errs, d.ledger.close())
	if d.checkpoint != nil {
		errs = append(errs, d.checkpoint.close())
	}
	if d.r != nil && d.r != d.w {
		errs = append(errs, d.r.Close())
	}
	if d.w != nil {
		errs = append(errs, d.w.Close())
	}
	if d.tempFile != "" {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(d.tempFile + suffix)
		}
	}
	return errors.Join(errs...)
}

// RawDB returns the writer pool for tests and tools that must read raw rows (e.g. to prove
// secrets are sealed). Application code uses the Store methods.
func (d *DB) RawDB() *sql.DB { return d.w }

// clock returns the current time in the precision the database keeps.
func (d *DB) clock() time.Time { return d.now().UTC().Truncate(time.Microsecond) }

// inTx runs fn in a write transaction and commits when fn returns nil.
func (d *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", mapErr(err))
	}
	return nil
}
