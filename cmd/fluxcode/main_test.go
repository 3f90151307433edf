package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/app"
	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/secret"
)

// runCmd runs one command line in-process with env as the whole environment.
func runCmd(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, config.MapEnv(env), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestConfigCheck(t *testing.T) {
	t.Run("valid: prints the configuration without secrets", func(t *testing.T) {
		code, out, errOut := runCmd(t, map[string]string{"JWT_SECRET": "a-jwt-secret-long-enough-0123456789abcdef", "ADMIN_PASSWORD": "hunter2hunter2"}, "config", "check")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if strings.Contains(out, "a-jwt-secret-long-enough") || strings.Contains(out, "hunter2") {
			t.Errorf("config check shows a secret:\n%s", out)
		}
		if !strings.Contains(out, "mode: single") || !strings.Contains(out, "JWT_SECRET=***") || !strings.Contains(out, "configuration is valid") {
			t.Errorf("output:\n%s", out)
		}
	})
	for name, tc := range map[string]struct {
		env  map[string]string
		want []string
	}{
		"bad enum":        {map[string]string{"LOG_FORMAT": "xml"}, []string{"LOG_FORMAT", "json", "text"}},
		"bad number":      {map[string]string{"SERVER_PORT": "eighty"}, []string{"SERVER_PORT"}},
		"bad duration":    {map[string]string{"GATEWAY_WAIT_TIMEOUT": "forever"}, []string{"GATEWAY_WAIT_TIMEOUT"}},
		"bad bool":        {map[string]string{"REGISTRATION_ENABLED": "sometimes"}, []string{"REGISTRATION_ENABLED"}},
		"cluster no key":  {map[string]string{"DATABASE_HOST": "db", "REDIS_HOST": "cache"}, []string{"ENCRYPTION_KEY"}},
		"two bad at once": {map[string]string{"SERVER_MODE": "prod", "REDIS_DB": "99"}, []string{"SERVER_MODE", "REDIS_DB"}},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tc.env, "config", "check")
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if out != "" {
				t.Errorf("printed a configuration although it is invalid:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
	if code, out, _ := runCmd(t, nil, "config", "vars"); code != 0 || !strings.Contains(out, "| `SERVER_PORT` |") {
		t.Errorf("config vars: %d\n%s", code, out)
	}
}

// TestConfigCheckClusterAndFiles: a valid cluster configuration from the environment and a
// YAML file prints every source, with every kind of secret hidden; a broken or missing
// CONFIG_FILE, or a Redis named two ways, exits 2 printing nothing on stdout.
func TestConfigCheckClusterAndFiles(t *testing.T) {
	secrets := []string{"url-pg-SECRET", "master-redis-SECRET", "sentinel-SECRET", "metrics-token-SECRET-0123", "admin-pw-SECRET"}
	dir := t.TempDir()
	sentinelPW := filepath.Join(dir, "sentinel-pw")
	yaml := filepath.Join(dir, "fluxcode.yaml")
	writeFile(t, sentinelPW, "sentinel-SECRET\n")
	writeFile(t, yaml, "redis_sentinel_addrs: [10.0.0.1:26379, 10.0.0.2:26379]\nredis_master_name: fluxmaster\nredis_sentinel_password_file: "+sentinelPW+"\nserver_port: 9090\n")
	env := map[string]string{
		"CONFIG_FILE":    yaml,
		"DATABASE_URL":   "postgres://flux:url-pg-SECRET@db:5432/fluxcode?sslmode=disable",
		"REDIS_PASSWORD": "master-redis-SECRET",
		"ENCRYPTION_KEY": strings.Repeat("ab", 32),
		"METRICS_TOKEN":  "metrics-token-SECRET-0123",
		"ADMIN_PASSWORD": "admin-pw-SECRET",
		"PPROF_ADDR":     "127.0.0.1:6060",
	}
	code, out, errOut := runCmd(t, env, "config", "check")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("config check shows secret %q:\n%s", s, out)
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^mode: cluster$`),
		regexp.MustCompile(`(?m)^config file: ` + regexp.QuoteMeta(yaml) + `$`),
		regexp.MustCompile(`(?m)^SERVER_PORT=9090 +# config file$`),
		regexp.MustCompile(`(?m)^REDIS_SENTINEL_ADDRS=10\.0\.0\.1:26379,10\.0\.0\.2:26379 +# config file$`),
		regexp.MustCompile(`(?m)^REDIS_SENTINEL_PASSWORD=\*\*\* +# config file redis_sentinel_password_file$`),
		regexp.MustCompile(`(?m)^REDIS_PASSWORD=\*\*\* +# env$`),
		regexp.MustCompile(`(?m)^METRICS_TOKEN=\*\*\* +# env$`),
		regexp.MustCompile(`(?m)^DATABASE_URL=postgres://flux:\*\*\*@db:5432/fluxcode\?sslmode=disable +# env$`),
		regexp.MustCompile(`(?m)^PPROF_ADDR=127\.0\.0\.1:6060 +# env$`),
		regexp.MustCompile(`(?m)^SERVER_HOST=0\.0\.0\.0 +# default$`),
		regexp.MustCompile(`(?m)^configuration is valid$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}

	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "server_prot: 80\n")
	for name, tc := range map[string]struct {
		env  map[string]string
		want []string
	}{
		"unknown key in CONFIG_FILE": {map[string]string{"CONFIG_FILE": bad}, []string{"server_prot", "line 1"}},
		"missing CONFIG_FILE":        {map[string]string{"CONFIG_FILE": filepath.Join(dir, "none.yaml")}, []string{"CONFIG_FILE"}},
		"redis two ways":             {with(env, "REDIS_HOST", "cache"), []string{"REDIS_HOST", "REDIS_SENTINEL_ADDRS", "one way only"}},
		"pprof on every interface":   {with(env, "PPROF_ADDR", "0.0.0.0:6060"), []string{"PPROF_ADDR", "PPROF_ALLOW_REMOTE"}},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tc.env, "config", "check")
			if code != exitUsage || out != "" {
				t.Errorf("exit %d, want %d; stdout %q", code, exitUsage, out)
			}
			for _, w := range append(tc.want, "invalid configuration") {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			for _, s := range secrets {
				if strings.Contains(errOut, s) {
					t.Errorf("stderr shows secret %q", s)
				}
			}
		})
	}
	if code, _, errOut := runCmd(t, nil, "config", "check", "extra"); code != exitUsage || errOut == "" {
		t.Errorf("config check extra: exit %d", code)
	}
}

// with copies env with name set to value.
func with(env map[string]string, name, value string) map[string]string {
	out := map[string]string{name: value}
	for k, v := range env {
		if k != name {
			out[k] = v
		}
	}
	return out
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHealthExitCodes(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		io.WriteString(w, `{"status":"x"}`)
	}))
	defer srv.Close()
	_, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")

	if code, out, _ := runCmd(t, nil, "health", "--url", srv.URL); code != 0 || out != `{"status":"x"}` {
		t.Errorf("healthy node: exit %d, out %q", code, out)
	}
	if code, _, _ := runCmd(t, nil, "health", "--url", srv.URL+"/health"); code != 0 {
		t.Errorf("--url with /health: exit %d", code)
	}
	// Default target: 127.0.0.1:$SERVER_PORT, also when SERVER_HOST is a wildcard.
	if code, _, errOut := runCmd(t, map[string]string{"SERVER_PORT": port, "SERVER_HOST": "0.0.0.0"}, "health"); code != 0 {
		t.Errorf("default url: exit %d: %s", code, errOut)
	}
	status = http.StatusServiceUnavailable
	if code, _, errOut := runCmd(t, nil, "health", "--url", srv.URL); code != exitFailure || !strings.Contains(errOut, "503") {
		t.Errorf("unhealthy node: exit %d, stderr %q", code, errOut)
	}
	srv.Close()
	if code, _, _ := runCmd(t, nil, "health", "--url", srv.URL); code != exitFailure {
		t.Errorf("no node: exit %d, want %d", code, exitFailure)
	}
	if code, _, _ := runCmd(t, nil, "health", "--bogus"); code != exitUsage {
		t.Errorf("bad flag: exit %d, want %d", code, exitUsage)
	}
	if code, _, _ := runCmd(t, nil, "health", "--url", srv.URL, "extra"); code != exitUsage {
		t.Errorf("extra argument: exit %d, want %d", code, exitUsage)
	}
	if code, _, errOut := runCmd(t, nil, "health", "--url", "::not a url"); code != exitUsage || errOut == "" {
		t.Errorf("malformed --url: exit %d, want %d", code, exitUsage)
	}
}

// TestHealthGivesUpAfterTimeout: a node that accepts but never answers is unhealthy (exit 1)
// once --timeout has passed.
func TestHealthGivesUpAfterTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	code, _, errOut := runCmd(t, nil, "health", "--url", srv.URL, "--timeout", "200ms")
	if code != exitFailure || !strings.Contains(errOut, "deadline exceeded") {
		t.Errorf("exit %d, want %d; stderr %q", code, exitFailure, errOut)
	}
	if code, _, _ := runCmd(t, nil, "health", "--url", srv.URL, "--timeout", "soon"); code != exitUsage {
		t.Errorf("bad --timeout: exit %d, want %d", code, exitUsage)
	}
}

// TestHealthOfARealNode probes an app.Main node on SQLite the way a container health check
// does: from SERVER_PORT alone, even when the rest of the environment would not validate;
// exit 0 while it serves, 1 once it has stopped.
func TestHealthOfARealNode(t *testing.T) {
	cfg, err := config.Load(config.MapEnv(map[string]string{"SERVER_HOST": "127.0.0.1", "SERVER_PORT": "0",
		"DATA_DIR": t.TempDir(), "LOG_LEVEL": "error"}))
	if err != nil {
		t.Fatal(err)
	}
	m := app.New(cfg, io.Discard)
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	_, port, _ := strings.Cut(m.Addr(), ":")
	env := map[string]string{"SERVER_PORT": port, "LOG_FORMAT": "xml"} // LOG_FORMAT is invalid: health ignores it
	code, out, errOut := runCmd(t, env, "health")
	if code != 0 || !strings.Contains(out, `"status":"ok"`) || !strings.Contains(out, `"database":{"status":"ok"`) {
		t.Errorf("serving node: exit %d, out %q, stderr %q", code, out, errOut)
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runCmd(t, env, "health"); code != exitFailure {
		t.Errorf("stopped node: exit %d, want %d", code, exitFailure)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"admin"}, {"admin", "create"}, {"admin", "promote"},
		{"config"}, {"config", "edit"}, {"serve", "extra"}, {"admin", "create", "--email", "a@b.c", "--password", "short"}} {
		if code, _, errOut := runCmd(t, nil, args...); code != exitUsage || errOut == "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
		}
	}
	if code, out, _ := runCmd(t, nil, "help"); code != 0 || !strings.Contains(out, "fluxcode [serve]") {
		t.Errorf("help: %d %q", code, out)
	}
	if code, out, _ := runCmd(t, nil, "version"); code != 0 || !strings.HasPrefix(out, "fluxcode dev") {
		t.Errorf("version: %d %q", code, out)
	}
}

// TestMaintenanceCommandsOnSQLite runs migrate and the admin commands against a real SQLite
// data directory, then checks the passwords they set with the store.
func TestMaintenanceCommandsOnSQLite(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir(), "LOG_LEVEL": "warn"}

	code, out, errOut := runCmd(t, env, "migrate")
	if code != 0 || !strings.Contains(out, "applied ") {
		t.Fatalf("migrate: %d %q %q", code, out, errOut)
	}
	if code, out, _ = runCmd(t, env, "migrate"); code != 0 || out != "schema is up to date\n" {
		t.Errorf("second migrate: %d %q", code, out)
	}

	code, out, errOut = runCmd(t, env, "admin", "create", "--email", "Root@Example.com")
	m := regexp.MustCompile(`password=(\S+)`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("admin create: %d %q %q", code, out, errOut)
	}
	checkPassword(t, env, "root@example.com", m[1])

	if code, _, errOut = runCmd(t, env, "admin", "create", "--email", "root@example.com", "--password", "whatever-pw"); code != exitFailure ||
		!strings.Contains(errOut, "reset-password") {
		t.Errorf("duplicate admin create: %d %q", code, errOut)
	}

	if code, out, errOut = runCmd(t, env, "admin", "reset-password", "--email", "root@example.com", "--password", "chosen-password-1"); code != 0 ||
		strings.Contains(out, "chosen-password-1") {
		t.Fatalf("reset-password: %d %q %q", code, out, errOut)
	}
	checkPassword(t, env, "root@example.com", "chosen-password-1")

	if code, _, errOut = runCmd(t, env, "admin", "reset-password", "--email", "nobody@example.com"); code != exitFailure || !strings.Contains(errOut, "no user") {
		t.Errorf("reset of a missing user: %d %q", code, errOut)
	}
}

func checkPassword(t *testing.T, env map[string]string, email, password string) {
	t.Helper()
	cfg, err := config.Load(config.MapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := app.LoadKeys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db, err := app.OpenStore(context.Background(), cfg, keys, app.NewLogger(cfg, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u, err := db.GetUserByEmail(context.Background(), email)
	if err != nil {
		t.Fatalf("user %s: %v", email, err)
	}
	if u.Role != "admin" || !secret.CheckPassword(u.PasswordHash, password) {
		t.Errorf("user %s: role %q, password matches %v", email, u.Role, secret.CheckPassword(u.PasswordHash, password))
	}
}
