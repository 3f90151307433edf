package testenv

import (
	"context"
	"os"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestLaunchPostgresWithSettings(t *testing.T) {
	p, err := LaunchPostgres("shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all")
	if err != nil {
		t.Fatal(err)
	}
	dir := p.dir
	closed := false
	t.Cleanup(func() {
		if !closed {
			p.Close()
		}
	})
	conn := mustConnectPG(t, p.DSN("postgres"))
	var libs string
	if err := conn.QueryRow(context.Background(), "SHOW shared_preload_libraries").Scan(&libs); err != nil {
		t.Fatal(err)
	}
	if libs != "pg_stat_statements" {
		t.Errorf("shared_preload_libraries = %q, want pg_stat_statements", libs)
	}
	pid := p.Pid()
	if pid <= 0 {
		t.Fatalf("Pid() = %d, want the postmaster's pid", pid)
	}
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("Getpgid(%d) = %d, %v; want its own group", pid, pgid, err)
	}
	conn.Close(context.Background())
	p.Close()
	closed = true
	if p.Pid() != 0 {
		t.Errorf("Pid() after Close = %d, want 0", p.Pid())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("data directory %s still exists after Close (%v)", dir, err)
	}
}

func TestLaunchRedisAndCaddy(t *testing.T) {
	r, err := LaunchRedis(WithPassword("pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	opt, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	if err := rc.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping with password: %v", err)
	}
	if r.Pid() <= 0 {
		t.Errorf("redis Pid() = %d", r.Pid())
	}

	c, err := LaunchCaddy("http://{$CADDY_ADDR} {\n\trespond \"ok\"\n}\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := c.dir
	if c.Pid() <= 0 {
		t.Errorf("caddy Pid() = %d", c.Pid())
	}
	c.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("caddy directory %s still exists after Close (%v)", dir, err)
	}
}
