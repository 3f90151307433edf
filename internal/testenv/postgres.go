package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// pgBinDir is where Debian's postgresql-15 package puts the server.
	pgBinDir     = "/usr/lib/postgresql/15/bin"
	pgPackage    = "postgresql-15"
	pgSuperuser  = "postgres"
	pgOSUser     = "postgres" // PostgreSQL refuses to run as root
	pgStartTries = 4          // new ports tried when FreePort's port is stolen
)

// Postgres is a dedicated PostgreSQL 15 server on 127.0.0.1 with a private
// data directory. Stop, Start and Restart keep its port and data, for tests
// of reconnection and of what survives a database restart.
//
// Authentication is trust for the superuser "postgres" over loopback; a
// test's server runs with fsync, synchronous_commit and full_page_writes off,
// which is safe because its data dies with the test (LaunchDurablePostgres
// keeps PostgreSQL's defaults, for the benchmark).
type Postgres struct {
	server          // Stop (fast shutdown: open sessions are terminated), Start, Restart, LogTail
	dir      string // temporary root: data directory, socket, log
	port     int
	settings []string // extra "name=value" server settings (LaunchPostgres)
	// durable keeps PostgreSQL's own defaults for fsync, synchronous_commit and
	// full_page_writes (LaunchDurablePostgres); tests turn them off.
	durable bool
	counter atomic.Int64
}

// StartPostgres starts a dedicated server for t; it is stopped and its files
// removed when t ends. Prefer PostgresDSN unless the test restarts the server
// or inspects server-wide state (pg_stat_activity).
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	RequireBinary(t, filepath.Join(pgBinDir, "postgres"), pgPackage)
	RequireBinary(t, filepath.Join(pgBinDir, "initdb"), pgPackage)
	p, err := newPostgres(false)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(p.close)
	return p
}

// Addr is the server's host:port on 127.0.0.1.
func (p *Postgres) Addr() string { return loopbackAddr(p.port) }

// Port is the server's TCP port.
func (p *Postgres) Port() int { return p.port }

// DSN is the URL of database dbname as the superuser, without TLS.
func (p *Postgres) DSN(dbname string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", pgSuperuser, p.Addr(), dbname)
}

// CreateDB creates an empty database named name (a plain SQL identifier).
func (p *Postgres) CreateDB(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("create database %s: connect: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func (p *Postgres) probe() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// close stops the server and removes its files.
func (p *Postgres) close() {
	_ = p.Stop()
	_ = os.RemoveAll(p.dir)
}

// newPostgres initialises a data directory and starts a server on a free
// port, trying a few ports when one is taken between FreePort and bind.
// settings are extra "name=value" server settings.
func newPostgres(durable bool, settings ...string) (*Postgres, error) {
	for _, name := range []string{"postgres", "initdb"} {
		if _, err := findBinary(filepath.Join(pgBinDir, name)); err != nil {
			return nil, fmt.Errorf("%s not found: install the Debian package %s (apt-get install %s)", filepath.Join(pgBinDir, name), pgPackage, pgPackage)
		}
	}
	dir, err := os.MkdirTemp("", "fluxcode-pg-")
	if err != nil {
		return nil, fmt.Errorf("postgres temp dir: %w", err)
	}
	p, err := initPostgres(dir, durable, settings)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := p.startOnFreePort(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

// startOnFreePort starts the prepared server, trying new ports when its port is taken
// between FreePort and bind.
func (p *Postgres) startOnFreePort() error {
	for try := 1; ; try++ {
		err := p.Start()
		if err == nil {
			return nil
		}
		if !errors.Is(err, errPortTaken) || try == pgStartTries {
			return err
		}
		if p.port, err = freePortOn("127.0.0.1"); err != nil {
			return err
		}
		p.proc.args = postgresArgs(p.dir, p.port, p.durable, p.settings)
	}
}

// initPostgres runs initdb in dir/data and prepares (without starting) the
// server process.
func initPostgres(dir string, durable bool, settings []string) (*Postgres, error) {
	cred, err := pgDataDir(dir)
	if err != nil {
		return nil, err
	}
	if err := runPGTool(dir, cred, "initdb", "-D", filepath.Join(dir, "data"), "-U", pgSuperuser, "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return nil, err
	}
	return preparePostgres(dir, durable, settings, cred)
}

// pgDataDir creates the empty data directory dir/data, both owned by the user the server
// runs as, and returns that user (nil: the current one).
func pgDataDir(dir string) (*syscall.Credential, error) {
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, fmt.Errorf("postgres data dir: %w", err)
	}
	if cred != nil {
		// The postgres user must own the data directory and be able to
		// create its socket in dir; the temp root is not secret.
		for _, d := range []string{dir, data} {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, fmt.Errorf("postgres chown %s: %w", d, err)
			}
		}
	}
	return cred, nil
}

// runPGTool runs one of PostgreSQL's programs (initdb, pg_basebackup) in dir as cred and
// waits for it to finish, logging to dir/<name>.log.
func runPGTool(dir string, cred *syscall.Credential, name string, args ...string) error {
	tool := &process{
		name: name, path: filepath.Join(pgBinDir, name), args: args,
		env: pgEnv(dir), dir: dir, logPath: filepath.Join(dir, name+".log"), cred: cred,
		stopSig: syscall.SIGTERM,
	}
	if err := tool.start(); err != nil {
		return err
	}
	select {
	case <-tool.exited:
	case <-time.After(readyTimeout):
		_ = tool.stop()
		return fmt.Errorf("%s did not finish within %s\n%s", name, readyTimeout, tool.logTail())
	}
	if tool.err != nil {
		return fmt.Errorf("%s: %v\n%s", name, tool.err, tool.logTail())
	}
	return nil
}

// preparePostgres prepares (without starting) a server on a free port over the data
// directory dir/data, run as cred (nil: the current user).
func preparePostgres(dir string, durable bool, settings []string, cred *syscall.Credential) (*Postgres, error) {
	port, err := freePortOn("127.0.0.1")
	if err != nil {
		return nil, err
	}
	p := &Postgres{dir: dir, port: port, settings: settings, durable: durable}
	p.server = server{
		probe:     p.probe,
		portTaken: "could not bind",
		proc: &process{
			name: "postgres", path: filepath.Join(pgBinDir, "postgres"),
			args: postgresArgs(dir, port, durable, settings), env: pgEnv(dir), dir: dir,
			logPath: filepath.Join(dir, "postgres.log"), cred: cred,
			// SIGINT is PostgreSQL's fast shutdown; SIGTERM ("smart") would
			// wait for every pooled test connection to go away.
			stopSig: syscall.SIGINT,
		},
	}
	return p, nil
}

// pgEnv is the environment of PostgreSQL's programs working in dir.
func pgEnv(dir string) []string {
	return []string{"PATH=" + pgBinDir + ":/usr/bin:/bin", "LC_ALL=C", "LANG=C", "HOME=" + dir, "TZ=UTC"}
}

func postgresArgs(dir string, port int, durable bool, settings []string) []string {
	args := []string{
		"-D", filepath.Join(dir, "data"),
		"-p", strconv.Itoa(port),
		"-k", dir, // unix socket beside the data, never /var/run
		"-c", "listen_addresses=127.0.0.1",
	}
	if !durable {
		// Safe only because a test's data dies with it; small buffers for many servers.
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "shared_buffers=64MB")
	}
	args = append(args, "-c", "max_connections=300", "-c", "log_min_messages=warning")
	for _, kv := range settings {
		args = append(args, "-c", kv)
	}
	return args
}

// serverCredential is the postgres OS user when running as root, nil
// otherwise (the server then runs as the current user).
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(pgOSUser)
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs the %q OS user (created by the Debian package %s): %w", pgOSUser, pgPackage, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of %s: %w", pgOSUser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of %s: %w", pgOSUser, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// shared holds the servers shared by every test of one test binary. It is
// package state on purpose: a test binary is the unit of sharing, and Main
// must find the server to stop it.
var shared sharedServers

type sharedServers struct {
	pgOnce sync.Once
	pg     *Postgres
	pgErr  error
}

func (s *sharedServers) postgres() (*Postgres, error) {
	s.pgOnce.Do(func() { s.pg, s.pgErr = newPostgres(false) })
	return s.pg, s.pgErr
}

func (s *sharedServers) stop() {
	if s.pg != nil {
		s.pg.close()
	}
}

// PostgresDSN returns the URL of a fresh, empty database on a PostgreSQL
// server shared by the whole test binary (started on first use, stopped by
// Main). The database is dropped when t ends, its sessions terminated.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	RequireBinary(t, filepath.Join(pgBinDir, "postgres"), pgPackage)
	RequireBinary(t, filepath.Join(pgBinDir, "initdb"), pgPackage)
	pg, err := shared.postgres()
	if err != nil {
		t.Fatalf("testenv: shared postgres: %v", err)
	}
	name := dbName(t.Name(), pg.counter.Add(1))
	if err := pg.CreateDB(name); err != nil {
		t.Fatalf("testenv: %v\n%s", err, pg.LogTail())
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
		if err != nil {
			t.Logf("testenv: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("testenv: drop database %s: %v", name, err)
		}
	})
	return pg.DSN(name)
}

// dbName makes a unique, readable database name from a test name.
func dbName(testName string, n int64) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	prefix := fmt.Sprintf("t%d_", n)
	s := b.String()
	if max := 63 - len(prefix); len(s) > max { // PostgreSQL's identifier limit
		s = s[:max]
	}
	return prefix + s
}
