package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/app"
	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// syncBuffer collects a node's stdout.
type syncBuffer = testenv.Buffer

// singleEnv is a single-node configuration on a fresh data directory, on a free port.
func singleEnv(t *testing.T, dataDir string) map[string]string {
	return map[string]string{
		"SERVER_HOST": "127.0.0.1",
		"SERVER_PORT": "0",
		"DATA_DIR":    dataDir,
		"LOG_FORMAT":  "json",
		"LOG_LEVEL":   "debug",
		// The tests' mock upstreams listen on loopback, which nodes refuse by default.
		"UPSTREAM_ALLOWED_NETWORKS": "127.0.0.0/8",
	}
}

// startNode runs a node and closes it when the test ends.
func startNode(t *testing.T, env map[string]string) (*app.Main, *syncBuffer) {
	t.Helper()
	cfg, err := config.Load(config.MapEnv(env))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	out := &syncBuffer{}
	m := app.New(cfg, out)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatalf("Run: %v\n%s", err, out)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m, out
}

var passwordLine = regexp.MustCompile(regexp.QuoteMeta(app.AdminPasswordLine) + ` email=(\S+) password=(\S+)`)

// do sends a JSON API request (see testenv.DoJSON).
func do(t *testing.T, method, url, token string, body any) (*http.Response, []byte) {
	t.Helper()
	return testenv.DoJSON(t, method, url, token, body)
}

func login(t *testing.T, base, email, password string) string {
	t.Helper()
	return testenv.Login(t, base, email, password)
}

type health struct {
	Status     string
	Components map[string]struct {
		Status    string
		LatencyMS float64 `json:"latency_ms"`
		Error     string
	}
}

func getHealth(t *testing.T, base string) (int, health) {
	t.Helper()
	resp, body := do(t, "GET", base+"/health", "", nil)
	var h health
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("/health body %q: %v", body, err)
	}
	return resp.StatusCode, h
}

func TestSingleNodeFirstStartAndRestart(t *testing.T) {
	dir := t.TempDir()
	m, out := startNode(t, singleEnv(t, dir))
	base := "http://" + m.Addr()

	code, h := getHealth(t, base)
	if code != 200 || h.Status != "ok" || h.Components["database"].Status != "ok" {
		t.Fatalf("/health = %d %+v", code, h)
	}
	if _, ok := h.Components["redis"]; ok {
		t.Errorf("single node reports a redis component: %+v", h)
	}

	lines := passwordLine.FindAllStringSubmatch(out.String(), -1)
	if len(lines) != 1 {
		t.Fatalf("want one generated-password line, got %d in:\n%s", len(lines), out)
	}
	email, password := lines[0][1], lines[0][2]
	if email != "admin@fluxcode.local" || len(password) < 16 {
		t.Errorf("line gives %q / %q", email, password)
	}
	// The password is on its own line only: never inside a structured log record.
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, password) && !strings.HasPrefix(l, app.AdminPasswordLine) {
			t.Errorf("password appears in another line: %s", l)
		}
	}

	token := login(t, base, email, password)
	resp, body := do(t, "GET", base+"/api/v1/me", token, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"admin"`) {
		t.Errorf("/api/v1/me = %d %s", resp.StatusCode, body)
	}
	if id := resp.Header.Get("X-Request-Id"); len(id) != 32 || !strings.Contains(out.String(), `"request_id":"`+id+`"`) {
		t.Errorf("request id %q missing from the response or the logs", id)
	}

	fi, err := os.Stat(filepath.Join(dir, "encryption.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("encryption.key: %v, mode %v", err, fi.Mode())
	}
	keyBefore, _ := os.ReadFile(filepath.Join(dir, "encryption.key"))

	resp, body = do(t, "GET", base+"/metrics", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `fluxcode_http_requests_total{code="200",method="GET",route="GET /health"} 1`) ||
		!strings.Contains(string(body), "go_goroutines") {
		t.Errorf("/metrics = %d, lacks the request counter:\n%.2000s", resp.StatusCode, body)
	}

	for path, want := range map[string]string{
		"/v1beta/nope":  `"status":"NOT_FOUND"`, // Gemini's shape; other paths serve the console
		"/v1/nope":      `"type":"not_found_error"`,
		"/api/v1/nope?": `"code":"not_found"`,
	} {
		resp, body := do(t, "GET", base+path, "", nil)
		var v map[string]any
		if resp.StatusCode != 404 || json.Unmarshal(body, &v) != nil || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %d %s, want a JSON 404 with %s", path, resp.StatusCode, body, want)
		}
	}

	// One request id from the edge to the answer: on a gateway route the gateway's id (its
	// ledger row's key) replaces the edge's in the X-Request-Id header, the body and the logs.
	req, _ := http.NewRequest("GET", base+"/v1/nope", nil)
	req.Header.Set("X-Request-Id", "proxy-id-1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if id := resp.Header.Get("X-Fluxcode-Request-Id"); id == "" || resp.Header.Get("X-Request-Id") != id ||
		!strings.Contains(string(body), `"request_id":"`+id+`"`) ||
		!strings.Contains(out.String(), `"request_id":"`+id+`"`) || strings.Contains(out.String(), `"request_id":"proxy-id-1"`) {
		t.Errorf("ids: X-Request-Id %q, X-Fluxcode-Request-Id %q, body %s", resp.Header.Get("X-Request-Id"), id, body)
	}

	if err := m.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Second start on the same data directory: no new admin, no password line, the same key,
	// and the token of the first run still valid (the generated JWT secret was stored).
	m2, out2 := startNode(t, singleEnv(t, dir))
	base2 := "http://" + m2.Addr()
	if strings.Contains(out2.String(), app.AdminPasswordLine) {
		t.Errorf("second start printed a password line:\n%s", out2)
	}
	keyAfter, _ := os.ReadFile(filepath.Join(dir, "encryption.key"))
	if !bytes.Equal(keyBefore, keyAfter) {
		t.Error("encryption.key changed on restart")
	}
	if resp, body := do(t, "GET", base2+"/api/v1/me", token, nil); resp.StatusCode != 200 {
		t.Errorf("first run's token refused after restart: %d %s", resp.StatusCode, body)
	}
	login(t, base2, email, password)
	if !strings.Contains(out2.String(), "JWT_SECRET is not set") {
		t.Errorf("no warning recommending a fixed JWT_SECRET:\n%s", out2)
	}
}

func TestConfiguredAdminPasswordIsNeverPrinted(t *testing.T) {
	env := singleEnv(t, t.TempDir())
	env["ADMIN_EMAIL"] = "Ops@Example.com"
	env["ADMIN_PASSWORD"] = "configured-Pa55word"
	env["JWT_SECRET"] = "fixed-jwt-secret-0123456789abcdef0123"
	m, out := startNode(t, env)
	if strings.Contains(out.String(), app.AdminPasswordLine) || strings.Contains(out.String(), "configured-Pa55word") {
		t.Errorf("output shows a password:\n%s", out)
	}
	if strings.Contains(out.String(), "JWT_SECRET is not set") {
		t.Errorf("warned about JWT_SECRET although it is set")
	}
	login(t, "http://"+m.Addr(), "ops@example.com", "configured-Pa55word")
}

// TestClusterHealthFollowsRedis runs a cluster node on a real PostgreSQL and Redis: /health
// names both; with Redis stopped it answers 503 naming redis (and no password); once Redis is
// back the node is healthy again by itself.
func TestClusterHealthFollowsRedis(t *testing.T) {
	const redisPassword = "redis-Secret-pw"
	rd := testenv.StartRedis(t, testenv.WithPassword(redisPassword))
	host, port, _ := strings.Cut(rd.Addr(), ":")
	env := map[string]string{
		"SERVER_HOST":    "127.0.0.1",
		"SERVER_PORT":    "0",
		"DATABASE_URL":   testenv.PostgresDSN(t),
		"REDIS_HOST":     host,
		"REDIS_PORT":     port,
		"REDIS_PASSWORD": redisPassword,
		"ENCRYPTION_KEY": strings.Repeat("ab", 32),
		"ADMIN_PASSWORD": "cluster-admin-pw",
		"DATA_DIR":       t.TempDir(),
	}
	m, _ := startNode(t, env)
	base := "http://" + m.Addr()

	code, h := getHealth(t, base)
	if code != 200 || h.Components["database"].Status != "ok" || h.Components["redis"].Status != "ok" {
		t.Fatalf("/health = %d %+v", code, h)
	}

	if err := rd.Stop(); err != nil {
		t.Fatal(err)
	}
	code, h = getHealth(t, base)
	if code != 503 || h.Status != "error" || h.Components["redis"].Status != "error" || h.Components["redis"].Error == "" ||
		h.Components["database"].Status != "ok" {
		t.Fatalf("with Redis down /health = %d %+v", code, h)
	}
	if strings.Contains(h.Components["redis"].Error, redisPassword) {
		t.Errorf("health error shows the password: %s", h.Components["redis"].Error)
	}
	// The liveness probe the load balancer uses stays 200: the node itself still serves and
	// answers each request with a clear error rather than vanishing behind the balancer.
	if resp, err := http.Get(base + "/health/live"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("with Redis down /health/live = %v, %v; want 200", resp, err)
	} else {
		resp.Body.Close()
	}

	if err := rd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ = getHealth(t, base); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not healthy 30s after Redis came back: %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	login(t, base, "admin@fluxcode.local", "cluster-admin-pw")
}

func TestRunFailsClearly(t *testing.T) {
	t.Run("port in use", func(t *testing.T) {
		m, _ := startNode(t, singleEnv(t, t.TempDir()))
		env := singleEnv(t, t.TempDir())
		_, env["SERVER_PORT"], _ = strings.Cut(m.Addr(), ":")
		cfg, err := config.Load(config.MapEnv(env))
		if err != nil {
			t.Fatal(err)
		}
		m2 := app.New(cfg, io.Discard)
		err = m2.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "SERVER_PORT") {
			t.Errorf("Run = %v, want an error naming SERVER_PORT", err)
		}
	})
	t.Run("wrong encryption key for the data", func(t *testing.T) {
		dir := t.TempDir()
		m, _ := startNode(t, singleEnv(t, dir))
		m.Close(context.Background())
		env := singleEnv(t, dir)
		env["ENCRYPTION_KEY"] = strings.Repeat("cd", 32)
		cfg, _ := config.Load(config.MapEnv(env))
		err := app.New(cfg, io.Discard).Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "ENCRYPTION_KEY") {
			t.Errorf("Run = %v, want an error naming ENCRYPTION_KEY", err)
		}
	})
}
