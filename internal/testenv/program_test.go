package testenv

import (
	"context"
	"maps"
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

// TestDurableServersKeepOperatorSettings: the benchmark's servers flush as an operator's do
// (PostgreSQL's defaults, Redis's append-only file every second); a test's server does not.
func TestDurableServersKeepOperatorSettings(t *testing.T) {
	ctx := context.Background()
	show := func(dsn string) map[string]string {
		conn := mustConnectPG(t, dsn)
		defer conn.Close(ctx)
		got := map[string]string{}
		for _, name := range []string{"fsync", "synchronous_commit", "full_page_writes", "shared_buffers"} {
			var v string
			if err := conn.QueryRow(ctx, "SHOW "+name).Scan(&v); err != nil {
				t.Fatal(err)
			}
			got[name] = v
		}
		return got
	}
	durable, err := LaunchDurablePostgres()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(durable.Close)
	want := map[string]string{"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on", "shared_buffers": "128MB"}
	if got := show(durable.DSN("postgres")); !maps.Equal(got, want) {
		t.Errorf("durable server: %v, want %v", got, want)
	}
	fast, err := LaunchPostgres()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fast.Close)
	if got := show(fast.DSN("postgres")); got["fsync"] != "off" || got["synchronous_commit"] != "off" {
		t.Errorf("test server: %v, want fsync and synchronous_commit off", got)
	}

	r, err := LaunchRedis(WithOperatorPersistence())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rc.Close()
	for name, want := range map[string]string{"appendonly": "yes", "appendfsync": "everysec"} {
		got, err := rc.ConfigGet(ctx, name).Result()
		if err != nil || got[name] != want {
			t.Errorf("redis %s = %v, %v; want %s", name, got, err, want)
		}
	}
}
