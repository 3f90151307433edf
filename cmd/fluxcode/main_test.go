package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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
