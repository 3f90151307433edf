package proc

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fluxcode/fluxcode/internal/testenv"
)

// writeProc lays out a fake /proc entry for pid.
func writeProc(t *testing.T, root string, pid int, stat, status string) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	if status != "" {
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// statLine builds a stat line; fields after the name: state ppid pgrp ... utime(14) stime(15)
// cutime(16) cstime(17) ... Each process leads its own group, as PostgreSQL's backends do.
func statLine(pid int, comm string, ppid, utime, stime, cutime, cstime int) string {
	return strconv.Itoa(pid) + " (" + comm + ") S " + strconv.Itoa(ppid) + " " + strconv.Itoa(pid) +
		" 0 0 0 0 0 0 0 0 " + strconv.Itoa(utime) + " " + strconv.Itoa(stime) + " " +
		strconv.Itoa(cutime) + " " + strconv.Itoa(cstime) + " 20 0 1 0 100 0 0\n"
}

func TestCPUParsesAfterTheName(t *testing.T) {
	root := t.TempDir()
	// A command name with spaces and a parenthesis must not shift the fields.
	writeProc(t, root, 42, statLine(42, "post gres) x", 42, 150, 50, 7, 3), "")
	got, err := Root(root).CPU(42)
	if err != nil {
		t.Fatal(err)
	}
	want := Times{User: 1500 * time.Millisecond, System: 500 * time.Millisecond, ChildUser: 70 * time.Millisecond, ChildSystem: 30 * time.Millisecond}
	if got != want {
		t.Errorf("CPU = %+v, want %+v", got, want)
	}
	if got.Total() != 2100*time.Millisecond {
		t.Errorf("Total = %v, want 2.1s", got.Total())
	}
}

func TestTreeCPUSumsTheProcessAndItsDescendants(t *testing.T) {
	root := t.TempDir()
	writeProc(t, root, 100, statLine(100, "postgres", 1, 10, 10, 5, 5), "")
	writeProc(t, root, 101, statLine(101, "postgres: bench", 100, 20, 0, 0, 0), "")
	writeProc(t, root, 102, statLine(102, "postgres: walwriter", 100, 0, 30, 0, 0), "")
	writeProc(t, root, 103, statLine(103, "postgres: worker child", 101, 4, 0, 0, 0), "")
	writeProc(t, root, 200, statLine(200, "redis-server", 1, 999, 999, 0, 0), "")
	if err := os.MkdirAll(filepath.Join(root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := Root(root).TreeCPU(100)
	if err != nil {
		t.Fatal(err)
	}
	if got.Total() != 840*time.Millisecond {
		t.Errorf("tree total = %v, want 840ms (10+10+5+5+20+30+4 ticks)", got.Total())
	}
	if _, err := Root(root).TreeCPU(300); err == nil {
		t.Error("TreeCPU of a missing process: want an error")
	}
}

// A real PostgreSQL: the CPU a backend burns on a query counts for the server, although the
// backend leads a process group of its own.
func TestTreeCPUCountsPostgresBackends(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pid := pg.Pid()
	tree0, err := Default.TreeCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	own0, err := Default.CPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM generate_series(1, 5000000)").Scan(&n); err != nil {
		t.Fatal(err)
	}
	tree1, err := Default.TreeCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	own1, err := Default.CPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	treeUsed, ownUsed := tree1.Total()-tree0.Total(), own1.Total()-own0.Total()
	if treeUsed < ownUsed+50*time.Millisecond {
		t.Errorf("the server's tree used %v and the postmaster alone %v on a query counting 5 million rows; "+
			"want the backend's time in the tree", treeUsed, ownUsed)
	}
}

func TestRSS(t *testing.T) {
	root := t.TempDir()
	writeProc(t, root, 7, statLine(7, "x", 7, 0, 0, 0, 0), "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t4\n")
	got, err := Root(root).RSS(7)
	if err != nil {
		t.Fatal(err)
	}
	if got != 2048<<10 {
		t.Errorf("RSS = %d, want %d", got, 2048<<10)
	}
	writeProc(t, root, 8, statLine(8, "kthread", 8, 0, 0, 0, 0), "Name:\tkthread\n")
	if _, err := Root(root).RSS(8); err == nil {
		t.Error("RSS without VmRSS: want an error")
	}
}

func TestLiveProcess(t *testing.T) {
	pid := os.Getpid()
	// Burn a little CPU so the counters are not both zero.
	deadline := time.Now().Add(30 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = strconv.Itoa(x)
	}
	if _, err := Default.CPU(pid); err != nil {
		t.Fatalf("CPU(self): %v", err)
	}
	rss, err := Default.RSS(pid)
	if err != nil {
		t.Fatalf("RSS(self): %v", err)
	}
	if rss <= 0 {
		t.Errorf("RSS(self) = %d, want > 0", rss)
	}
}
