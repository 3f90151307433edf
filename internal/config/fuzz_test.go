package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/config"
)

// FuzzLoad: any config file and environment either loads or is refused with an error —
// never a panic — the same way twice, and a loaded configuration's Redacted view never
// shows a secret. Inputs that name files are skipped: the loader reads the files they name
// (a *_FILE of /dev/zero would never end), which is the operator's to choose.
func FuzzLoad(f *testing.F) {
	f.Add("server_port: 9000\nlog_format: json\ntrusted_proxies:\n  - 10.0.0.0/8\ntz: ~\n", "LOG_LEVEL=warn")
	f.Add("database_host: 10.0.0.10\nredis_host: 10.0.0.10\nredis_sentinel_addrs: [a:1, b:2]\n", "RUN_MODE=standard\nSERVER_PORT=0")
	f.Add("- a\n- b\n", "")
	f.Add("unknown_key: 1\nserver_port: {a: b}\n", "GATEWAY_WAIT_TIMEOUT=-1s")
	f.Add("&a [*a, *a]", "DATABASE_URL=postgres://u:p@h:1/x?sslmode=disable")
	secrets := map[string]string{
		"JWT_SECRET":        "fz-jwt-SECRET-that-is-long-enough-0123456789",
		"ADMIN_PASSWORD":    "fz-admin-SECRET-pass",
		"DATABASE_PASSWORD": "fz-pg-SECRET-pass",
		"REDIS_PASSWORD":    "fz-redis-SECRET-pass",
		"ENCRYPTION_KEY":    "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
	}
	f.Fuzz(func(t *testing.T, doc, envText string) {
		if strings.Contains(strings.ToLower(doc+envText), "file") {
			return
		}
		path := filepath.Join(t.TempDir(), "fluxcode.yaml")
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"CONFIG_FILE": path}
		for name, v := range secrets {
			env[name] = v
		}
		for _, line := range strings.Split(envText, "\n") {
			if name, v, ok := strings.Cut(line, "="); ok {
				env[name] = v
			}
		}
		c1, err1 := config.Load(config.MapEnv(env))
		c2, err2 := config.Load(config.MapEnv(env))
		if (err1 == nil) != (err2 == nil) || err1 != nil && err1.Error() != err2.Error() {
			t.Fatalf("two loads differ: %v / %v", err1, err2)
		}
		if err1 != nil {
			return
		}
		r := c1.Redacted()
		if r != c2.Redacted() {
			t.Fatalf("two loads differ:\n%s\n%s", r, c2.Redacted())
		}
		for name, v := range secrets {
			if env[name] == v && strings.Contains(r, v) {
				t.Fatalf("Redacted shows %s:\n%s", name, r)
			}
		}
	})
}
