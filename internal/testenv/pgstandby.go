package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresPair is a PostgreSQL primary with a hot standby streaming from it, each a
// dedicated server on 127.0.0.1 like StartPostgres's. Replication is synchronous (every
// commit on the primary waits until the standby has it), so promoting the standby after
// the primary is gone loses no committed transaction: what a failover of a production pair
// configured that way promises.
type PostgresPair struct {
	Primary *Postgres
	Standby *Postgres
}

// StartPostgresPair starts a primary, copies it with pg_basebackup into a standby that
// streams from it, and waits until the standby replicates synchronously. Both are stopped
// and their files removed when t ends.
func StartPostgresPair(t testing.TB) *PostgresPair {
	t.Helper()
	for _, name := range []string{"postgres", "initdb", "pg_basebackup"} {
		RequireBinary(t, filepath.Join(pgBinDir, name), pgPackage)
	}
	// synchronous_commit comes after the test servers' "off": the last setting wins.
	primary, err := newPostgres(false, "synchronous_commit=on", "synchronous_standby_names=*")
	if err != nil {
		t.Fatalf("testenv: primary: %v", err)
	}
	t.Cleanup(primary.close)
	standby, err := newStandby(primary)
	if err != nil {
		t.Fatalf("testenv: standby: %v\n%s", err, primary.LogTail())
	}
	t.Cleanup(standby.close)
	pair := &PostgresPair{Primary: primary, Standby: standby}
	if err := pair.waitSynchronous(); err != nil {
		t.Fatalf("testenv: %v\nprimary:\n%s\nstandby:\n%s", err, primary.LogTail(), standby.LogTail())
	}
	return pair
}

// newStandby copies primary with pg_basebackup (-R writes standby.signal and the
// connection to the primary) and starts the copy as a hot standby.
func newStandby(primary *Postgres) (*Postgres, error) {
	dir, err := os.MkdirTemp("", "fluxcode-pg-standby-")
	if err != nil {
		return nil, fmt.Errorf("standby temp dir: %w", err)
	}
	cred, err := pgDataDir(dir)
	if err == nil {
		err = runPGTool(dir, cred, "pg_basebackup", "-D", filepath.Join(dir, "data"), "-h", "127.0.0.1",
			"-p", strconv.Itoa(primary.Port()), "-U", pgSuperuser, "-R", "-X", "stream", "--no-sync")
	}
	var p *Postgres
	if err == nil {
		// The standby's own name, which the primary sees as application_name.
		p, err = preparePostgres(dir, false, []string{"cluster_name=standby"}, cred)
	}
	if err == nil {
		err = p.startOnFreePort()
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

// waitSynchronous waits until the primary reports the standby streaming as a synchronous
// standby: from then on every commit is on both servers.
func (p *PostgresPair) waitSynchronous() error {
	deadline := time.Now().Add(readyTimeout)
	var state string
	for time.Now().Before(deadline) {
		state = p.replicationState()
		if state == "streaming/sync" {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the standby did not stream synchronously within %s (last state %q)", readyTimeout, state)
}

// replicationState is the primary's view of its standby, "state/sync_state", or "".
func (p *PostgresPair) replicationState() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.Primary.DSN("postgres"))
	if err != nil {
		return ""
	}
	defer conn.Close(ctx)
	var state, sync string
	if err := conn.QueryRow(ctx, "SELECT state, sync_state FROM pg_stat_replication LIMIT 1").Scan(&state, &sync); err != nil {
		return ""
	}
	return state + "/" + sync
}

// Hosts lists both servers for a multi-host PostgreSQL URL, the primary first:
// "127.0.0.1:P1,127.0.0.1:P2".
func (p *PostgresPair) Hosts() string { return p.Primary.Addr() + "," + p.Standby.Addr() }

// DSN is the multi-host URL of dbname as the superuser, asking for the server that accepts
// writes (target_session_attrs=read-write): the primary, or the standby once promoted.
func (p *PostgresPair) DSN(dbname string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable&target_session_attrs=read-write", pgSuperuser, p.Hosts(), dbname)
}

// Promote makes the standby a primary and waits until it accepts writes.
func (p *PostgresPair) Promote() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.Standby.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("promote: connect to the standby: %w", err)
	}
	defer conn.Close(ctx)
	var done bool
	if err := conn.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&done); err != nil {
		return fmt.Errorf("promote the standby: %w\n%s", err, p.Standby.LogTail())
	}
	if !done {
		return fmt.Errorf("the standby did not finish its promotion within 60s\n%s", p.Standby.LogTail())
	}
	return nil
}

// Kill ends the server and its backends with SIGKILL, as a crash or a pulled plug would:
// nothing is flushed or handed to a standby, clients see their connections reset.
func (p *Postgres) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	proc := p.proc
	if proc.cmd == nil || proc.hasExited() {
		return nil
	}
	if err := syscall.Kill(-proc.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill postgres: %w", err)
	}
	<-proc.exited
	return nil
}
