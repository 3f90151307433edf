package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/app"
	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/coord/redis"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// TestPprofListensApart: with PPROF_ADDR the profiler answers on its own listener and not on
// the main port; the main routes are not on the profiler's listener; Close stops it.
func TestPprofListensApart(t *testing.T) {
	env := singleEnv(t, t.TempDir())
	env["PPROF_ADDR"] = "127.0.0.1:0"
	m, out := startNode(t, env)
	base, pprofBase := "http://"+m.Addr(), "http://"+m.PprofAddr()
	if m.PprofAddr() == "" || m.PprofAddr() == m.Addr() {
		t.Fatalf("pprof addr %q, main addr %q", m.PprofAddr(), m.Addr())
	}
	if !strings.Contains(out.String(), `"msg":"pprof listening","addr":"`+m.PprofAddr()+`"`) {
		t.Errorf("the pprof address is not logged:\n%s", out)
	}

	resp, body := do(t, "GET", pprofBase+"/debug/pprof/", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine") {
		t.Errorf("pprof index = %d %.300s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", pprofBase+"/debug/pprof/goroutine?debug=1", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile:") {
		t.Errorf("goroutine profile = %d %.300s", resp.StatusCode, body)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine", "/debug/pprof/cmdline"} {
		if resp, body := do(t, "GET", base+path, "", nil); resp.StatusCode != 404 || !strings.Contains(string(body), `"not_found"`) {
			t.Errorf("main port GET %s = %d %s, want the JSON 404", path, resp.StatusCode, body)
		}
	}
	for _, path := range []string{"/health", "/metrics", "/api/v1/me"} {
		if resp, _ := do(t, "GET", pprofBase+path, "", nil); resp.StatusCode != 404 {
			t.Errorf("pprof listener GET %s = %d, want 404", path, resp.StatusCode)
		}
	}

	addr := m.PprofAddr()
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("pprof still listens on %s after Close", addr)
	}
}

func TestPprofOffByDefaultAndPortClash(t *testing.T) {
	m, _ := startNode(t, singleEnv(t, t.TempDir()))
	if m.PprofAddr() != "" {
		t.Errorf("pprof listens on %s without PPROF_ADDR", m.PprofAddr())
	}
	if resp, _ := do(t, "GET", "http://"+m.Addr()+"/debug/pprof/", "", nil); resp.StatusCode != 404 {
		t.Errorf("main port serves pprof: %d", resp.StatusCode)
	}

	// PPROF_ADDR taken: Run fails naming it and leaves nothing listening.
	env := singleEnv(t, t.TempDir())
	env["PPROF_ADDR"] = m.Addr()
	cfg, err := config.Load(config.MapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	m2 := app.New(cfg, &syncBuffer{})
	err = m2.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "PPROF_ADDR") {
		t.Errorf("Run = %v, want an error naming PPROF_ADDR", err)
	}
	if m2.Addr() != "" || m2.PprofAddr() != "" {
		t.Errorf("a failed Run left listeners: main %q pprof %q", m2.Addr(), m2.PprofAddr())
	}

	// The main port taken after the profiler started: the profiler is closed again.
	env = singleEnv(t, t.TempDir())
	env["PPROF_ADDR"] = "127.0.0.1:0"
	_, env["SERVER_PORT"], _ = strings.Cut(m.Addr(), ":")
	if cfg, err = config.Load(config.MapEnv(env)); err != nil {
		t.Fatal(err)
	}
	m3 := app.New(cfg, &syncBuffer{})
	if err := m3.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "SERVER_PORT") {
		t.Fatalf("Run = %v, want an error naming SERVER_PORT", err)
	}
	if m3.PprofAddr() == "" {
		t.Fatal("the profiler did not start before the main listener")
	}
	if c, err := net.Dial("tcp", m3.PprofAddr()); err == nil {
		c.Close()
		t.Errorf("a failed Run left the profiler listening on %s", m3.PprofAddr())
	}
}

// TestMetricsToken: with METRICS_TOKEN, /metrics answers only the right bearer token; without
// it /metrics is open.
func TestMetricsToken(t *testing.T) {
	const token = "metrics-Token-0123456789abcdef"
	env := singleEnv(t, t.TempDir())
	env["METRICS_TOKEN"] = token
	m, out := startNode(t, env)
	url := "http://" + m.Addr() + "/metrics"

	for name, header := range map[string]string{
		"none":           "",
		"wrong token":    "Bearer metrics-Token-0123456789abcdeX",
		"prefix":         "Bearer " + token[:10],
		"basic scheme":   "Basic " + token,
		"token alone":    token,
		"empty bearer":   "Bearer ",
		"token appended": "Bearer " + token + "x",
	} {
		req, _ := http.NewRequest("GET", url, nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") ||
			!strings.Contains(b.String(), `"code":"unauthenticated"`) || strings.Contains(b.String(), "go_goroutines") {
			t.Errorf("%s: %d %q %s", name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), b.String())
		}
	}
	resp, body := do(t, "GET", url, token, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("right token: %d %.300s", resp.StatusCode, body)
	}
	// The refusals are counted like any request.
	if !strings.Contains(string(body), `fluxcode_http_requests_total{code="401",method="GET",route="GET /metrics"} 7`) {
		t.Errorf("refused scrapes are not counted:\n%.3000s", body)
	}
	if strings.Contains(out.String(), token) {
		t.Errorf("the metrics token appears in the logs")
	}

	open, _ := startNode(t, singleEnv(t, t.TempDir()))
	if resp, body := do(t, "GET", "http://"+open.Addr()+"/metrics", "", nil); resp.StatusCode != 200 || !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("without METRICS_TOKEN: %d", resp.StatusCode)
	}
}

func TestRedisOptionsPerDeployment(t *testing.T) {
	base := map[string]string{"DATABASE_HOST": "db", "ENCRYPTION_KEY": strings.Repeat("ab", 32), "REDIS_PASSWORD": "master-pw",
		"REDIS_POOL_SIZE": "7", "REDIS_MIN_IDLE_CONNS": "2"}
	load := func(extra map[string]string) redis.Options {
		t.Helper()
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range extra {
			env[k] = v
		}
		cfg, err := config.Load(config.MapEnv(env))
		if err != nil {
			t.Fatal(err)
		}
		return app.RedisOptions(cfg)
	}
	o := load(map[string]string{"REDIS_HOST": "cache", "REDIS_PORT": "6380", "REDIS_DB": "2"})
	if strings.Join(o.Addrs, ",") != "cache:6380" || o.MasterName != "" || o.Cluster || o.DB != 2 || o.Password != "master-pw" ||
		o.PoolSize != 7 || o.MinIdleConns != 2 {
		t.Errorf("host: %+v", o)
	}
	o = load(map[string]string{"REDIS_URL": "redis://cache:6379/1"})
	if o.URL != "redis://cache:6379/1" || len(o.Addrs) != 0 || o.Cluster {
		t.Errorf("url: %+v", o)
	}
	o = load(map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379,s2:26379", "REDIS_MASTER_NAME": "mymaster", "REDIS_SENTINEL_PASSWORD": "sentinel-pw"})
	if strings.Join(o.Addrs, ",") != "s1:26379,s2:26379" || o.MasterName != "mymaster" || o.SentinelPassword != "sentinel-pw" ||
		o.Password != "master-pw" || o.Cluster {
		t.Errorf("sentinel: %+v", o)
	}
	o = load(map[string]string{"REDIS_CLUSTER_ADDRS": "n1:7000"})
	if strings.Join(o.Addrs, ",") != "n1:7000" || !o.Cluster || o.MasterName != "" {
		t.Errorf("cluster: %+v", o)
	}
}

// TestRedisLogsGoToSlog: after RouteRedisLogs, go-redis's own complaint about a failed dial
// arrives as a structured record instead of on stderr.
func TestRedisLogsGoToSlog(t *testing.T) {
	var buf syncBuffer
	cfg, err := config.Load(config.MapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	app.RouteRedisLogs(cfg, slog.New(slog.NewJSONHandler(&buf, nil)))

	port := testenv.FreePort(t) // nothing listens there
	_, err = redis.New(context.Background(), redis.Options{Addrs: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}})
	if err == nil {
		t.Fatal("connected to a port where nothing listens")
	}
	if !strings.Contains(buf.String(), `"component":"go-redis"`) || !strings.Contains(buf.String(), "failed to dial") ||
		!strings.Contains(buf.String(), `"level":"WARN"`) {
		t.Errorf("go-redis's log line did not arrive through slog:\n%s", buf.String())
	}
}
