package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { Main(m) }

func mustConnectPG(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestPostgresDSN(t *testing.T) {
	ctx := context.Background()
	a, b := PostgresDSN(t), PostgresDSN(t)
	if a == b {
		t.Fatalf("two calls returned the same database %s", a)
	}
	if !strings.HasPrefix(a, "postgres://postgres@127.0.0.1:") || !strings.HasSuffix(a, "?sslmode=disable") {
		t.Errorf("DSN = %q, want postgres://postgres@127.0.0.1:PORT/NAME?sslmode=disable", a)
	}
	ca, cb := mustConnectPG(t, a), mustConnectPG(t, b)
	if _, err := ca.Exec(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	var v int
	if err := ca.QueryRow(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != 42 {
		t.Fatalf("read back = %d, %v; want 42", v, err)
	}
	var tables int
	if err := cb.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("second database has %d tables, want an empty database", tables)
	}
	var version string
	if err := ca.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil || !strings.HasPrefix(version, "15") {
		t.Errorf("server_version = %q, %v; want 15.x", version, err)
	}
}

func TestPostgresDSNDroppedAtCleanup(t *testing.T) {
	var dsn string
	t.Run("inner", func(t *testing.T) { dsn = PostgresDSN(t) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		conn.Close(ctx)
		t.Fatalf("database %s still exists after its test ended", dsn)
	}
	if !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("connect to dropped database: %v; want a does-not-exist error", err)
	}
}

func TestStartPostgresStopStartRestart(t *testing.T) {
	ctx := context.Background()
	pg := StartPostgres(t)
	if err := pg.CreateDB("app"); err != nil {
		t.Fatal(err)
	}
	dsn := pg.DSN("app")
	conn := mustConnectPG(t, dsn)
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives')"); err != nil {
		t.Fatal(err)
	}
	var maxConns int
	if err := conn.QueryRow(ctx, "SELECT current_setting('max_connections')::int").Scan(&maxConns); err != nil || maxConns < 300 {
		t.Errorf("max_connections = %d, %v; want >= 300", maxConns, err)
	}
	addr := pg.Addr()

	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	if pg.Addr() != addr {
		t.Fatalf("address changed across restart: %s -> %s", addr, pg.Addr())
	}
	if err := conn.Ping(ctx); err == nil {
		t.Error("a connection from before the restart still answers; want it closed by the restart")
	}
	var v string
	if err := mustConnectPG(t, dsn).QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "survives" {
		t.Fatalf("after restart read %q, %v; want survives", v, err)
	}

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if c, err := pgx.Connect(cctx, dsn); err == nil {
		c.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	if err := pg.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	if err := mustConnectPG(t, dsn).QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "survives" {
		t.Fatalf("after stop/start read %q, %v; want survives", v, err)
	}
}

func TestRedisRestartForgetsWithoutPersistence(t *testing.T) {
	ctx := context.Background()
	r := StartRedis(t)
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	addr := r.Addr()
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	if r.Addr() != addr {
		t.Fatalf("address changed across restart: %s -> %s", addr, r.Addr())
	}
	c2 := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c2.Close()
	if err := c2.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET after restart: %v; want redis.Nil (nothing persisted)", err)
	}
}

func TestRedisPersistenceAndStop(t *testing.T) {
	ctx := context.Background()
	r := StartRedis(t, WithPersistence())
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING answered by a stopped server")
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET after stop/start = %q, %v; want v", got, err)
	}
}

func TestRedisPasswordEnforced(t *testing.T) {
	ctx := context.Background()
	r := StartRedis(t, WithPassword("s3cret/with:chars"))

	anon := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer anon.Close()
	if err := anon.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("PING without password: %v; want NOAUTH", err)
	}
	wrong := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: "wrong"})
	defer wrong.Close()
	if err := wrong.Ping(ctx).Err(); err == nil {
		t.Error("PING with a wrong password succeeded")
	}
	opts, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", r.URL(), err)
	}
	good := redis.NewClient(opts)
	defer good.Close()
	if err := good.Ping(ctx).Err(); err != nil {
		t.Errorf("PING with URL's password: %v", err)
	}
}

func TestCaddyProxiesAndReloads(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "from backend")
	}))
	defer backend.Close()

	c := StartCaddy(t, `
# comment before the site
http://{$CADDY_ADDR} {
	reverse_proxy {$BACKEND}
}
`, map[string]string{"BACKEND": strings.TrimPrefix(backend.URL, "http://")})

	if got := mustGet(t, "http://"+c.Addr()+"/x"); got != "from backend" {
		t.Errorf("through caddy: %q, want from backend", got)
	}
	err := c.Reload(`{
	log default {
		output stderr
	}
}
http://{$CADDY_ADDR} {
	respond "reloaded"
}
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, "http://"+c.Addr()+"/x"); got != "reloaded" {
		t.Errorf("after reload: %q, want reloaded", got)
	}
	if err := c.Reload("this is { not a caddyfile"); err == nil {
		t.Error("Reload accepted a broken Caddyfile")
	}
	if got := mustGet(t, "http://"+c.Addr()+"/x"); got != "reloaded" {
		t.Errorf("after a failed reload: %q, want the previous config still serving", got)
	}
}

func mustGet(t *testing.T, url string) string {
	t.Helper()
	client := http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return string(body)
}

func TestLoopbackListen(t *testing.T) {
	for in, want := range map[string]string{
		":8080":              "127.0.0.1:8080",
		"tcp/:8080":          "tcp/127.0.0.1:8080",
		"127.0.0.1:8080":     "127.0.0.1:8080",
		"127.0.0.12:80":      "127.0.0.12:80",
		"[::1]:8080":         "[::1]:8080",
		"localhost:8080":     "localhost:8080",
		"tcp4/127.0.0.1:443": "tcp4/127.0.0.1:443",
	} {
		if got, err := loopbackListen(in); err != nil || got != want {
			t.Errorf("loopbackListen(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"0.0.0.0:80", "10.0.0.1:80", "example.com:80", "[::]:80", "8080"} {
		if got, err := loopbackListen(in); err == nil {
			t.Errorf("loopbackListen(%q) = %q; want a refusal", in, got)
		}
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and stops
// the caller the way FailNow would, so RequireBinary's failure can be seen.
type fatalRecorder struct {
	testing.TB
	msg string
}

type stopped struct{}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(stopped{})
}

func TestRequireBinary(t *testing.T) {
	t.Run("MissingFailsWithPackage", func(t *testing.T) {
		msg := expectFatal(t, func(tb testing.TB) { RequireBinary(tb, "fluxcode-no-such-binary", "fluxcode-pkg") })
		if !strings.Contains(msg, "fluxcode-no-such-binary not found") || !strings.Contains(msg, "apt-get install fluxcode-pkg") {
			t.Errorf("message = %q; want it to name the binary and the package to install", msg)
		}
	})
	t.Run("PresentReturnsPath", func(t *testing.T) {
		if got := RequireBinary(t, "redis-server", "redis-server"); !strings.HasSuffix(got, "/redis-server") {
			t.Errorf("path = %q", got)
		}
		if got := RequireBinary(t, pgBinDir+"/postgres", pgPackage); got != pgBinDir+"/postgres" {
			t.Errorf("path = %q", got)
		}
	})
}

func TestFreePortOnRefusesNonLoopback(t *testing.T) {
	for _, ip := range []string{"0.0.0.0", "10.1.2.3", "not-an-ip"} {
		if _, err := freePortOn(ip); err == nil {
			t.Errorf("freePortOn(%q) succeeded; want refusal", ip)
		}
	}
	if p := FreePortOn(t, "127.0.0.2"); p <= 0 {
		t.Errorf("FreePortOn(127.0.0.2) = %d", p)
	}
}

func TestDBName(t *testing.T) {
	if got := dbName("TestX/sub case-1", 7); got != "t7_testx_sub_case_1" {
		t.Errorf("dbName = %q", got)
	}
	if got := dbName(strings.Repeat("a", 100), 12); len(got) != 63 {
		t.Errorf("len(dbName(long)) = %d, want 63", len(got))
	}
}

func TestPostgresDSNParallel(t *testing.T) {
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			conn := mustConnectPG(t, PostgresDSN(t))
			var one int
			if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Fatalf("SELECT 1 = %d, %v", one, err)
			}
		})
	}
}
