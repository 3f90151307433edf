package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

const caddyfileName = "Caddyfile.multihost"

// caddyCLI runs "caddy <args>" with only env and private home directories in its
// environment, so nothing from the machine running the tests leaks into the Caddyfile.
func caddyCLI(t testing.TB, env map[string]string, args ...string) ([]byte, error) {
	t.Helper()
	bin := testenv.RequireBinary(t, "caddy", "caddy")
	home := t.TempDir()
	vars := map[string]string{
		"HOME":            home,
		"XDG_CONFIG_HOME": filepath.Join(home, "config"),
		"XDG_DATA_HOME":   filepath.Join(home, "data"),
		"PATH":            "/usr/bin:/bin",
	}
	maps.Copy(vars, env)
	res := testenv.Run(t, bin, testenv.ProcessOptions{Args: args, Env: vars})
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("caddy %s: exit status %d: %s", args[0], res.ExitCode, res.Stderr)
	}
	return []byte(res.Stdout), nil
}

// adapt turns deploy/Caddyfile.multihost into Caddy's JSON under env.
func adapt(t testing.TB, env map[string]string) (map[string]any, error) {
	t.Helper()
	out, err := caddyCLI(t, env, "adapt", "--config", deployPath(caddyfileName), "--adapter", "caddyfile")
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("caddy adapt printed no JSON: %v\n%s", err, out)
	}
	return cfg, nil
}

func mustAdapt(t testing.TB, env map[string]string) map[string]any {
	t.Helper()
	cfg, err := adapt(t, env)
	if err != nil {
		t.Fatalf("caddy adapt with %v: %v", env, err)
	}
	return cfg
}

// findHandler returns the first handler object named name anywhere in the config.
func findHandler(v any, name string) map[string]any {
	switch v := v.(type) {
	case map[string]any:
		if v["handler"] == name {
			return v
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if h := findHandler(v[k], name); h != nil {
				return h
			}
		}
	case []any:
		for _, e := range v {
			if h := findHandler(e, name); h != nil {
				return h
			}
		}
	}
	return nil
}

// path walks nested objects: path(cfg, "apps", "http", "servers").
func path(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

func dials(proxy map[string]any) []string {
	var out []string
	ups, _ := proxy["upstreams"].([]any)
	for _, u := range ups {
		out = append(out, path(u, "dial").(string))
	}
	return out
}

func TestCaddyfileAdaptsInEveryMode(t *testing.T) {
	defaults, err := config.Load(config.MapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name        string
		env         map[string]string
		listen      string
		dynamic     bool
		upstreams   []string
		policy      string
		cookieKey   string
		healthEvery time.Duration
	}{
		{name: "defaults: mode A, cookie on, plain HTTP on :80",
			env: map[string]string{}, listen: ":80", dynamic: true, policy: "cookie", healthEvery: 5 * time.Second},
		{name: "mode B list, cookie off",
			env: map[string]string{
				"FLUXCODE_UPSTREAMS":  "to fluxcode:8080 10.0.0.12:8080 10.0.0.13:8080",
				"CADDY_STICKY_COOKIE": "off",
			},
			listen: ":80", upstreams: []string{"fluxcode:8080", "10.0.0.12:8080", "10.0.0.13:8080"},
			policy: "least_conn", healthEvery: 5 * time.Second},
		{name: "mode B list, cookie on with a secret, a site bound to loopback",
			env: map[string]string{
				"CADDY_ADDRESS":          "http://127.0.0.1:18080",
				"FLUXCODE_UPSTREAMS":     "to 127.0.0.11:8080 127.0.0.12:8080",
				"CADDY_STICKY_COOKIE":    "on",
				"CADDY_LB_COOKIE_SECRET": "s3cret",
				"CADDY_HEALTH_INTERVAL":  "2s",
				"CADDY_BIND":             "127.0.0.1",
			},
			listen: "127.0.0.1:18080", upstreams: []string{"127.0.0.11:8080", "127.0.0.12:8080"},
			policy: "cookie", cookieKey: "s3cret", healthEvery: 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustAdapt(t, tc.env)
			srv := path(cfg, "apps", "http", "servers", "srv0")
			if got := path(srv, "listen"); len(got.([]any)) != 1 || got.([]any)[0] != tc.listen {
				t.Errorf("listen = %v, want [%s]", got, tc.listen)
			}
			// Server timeouts: slow headers are cut, a long answer never is.
			if num(path(srv, "read_header_timeout")) == 0 {
				t.Error("no read_header_timeout")
			}
			if w := path(srv, "write_timeout"); w != nil {
				t.Errorf("write_timeout = %v; it would cut long SSE answers", w)
			}
			if path(srv, "logs") != nil {
				t.Error("access logs are on; they would record Gemini API keys from query strings")
			}

			proxy := findHandler(cfg, "reverse_proxy")
			if proxy == nil {
				t.Fatalf("no reverse_proxy handler in %v", cfg)
			}
			if tc.dynamic {
				d := path(proxy, "dynamic_upstreams")
				if path(d, "source") != "a" || path(d, "name") != "fluxcode" || path(d, "port") != "8080" {
					t.Errorf("dynamic_upstreams = %v, want a fluxcode 8080", d)
				}
				if ups := dials(proxy); len(ups) != 0 {
					t.Errorf("static upstreams %v beside the dynamic ones", ups)
				}
			} else {
				if got := dials(proxy); !slices.Equal(got, tc.upstreams) {
					t.Errorf("upstreams = %v, want %v", got, tc.upstreams)
				}
				if d := path(proxy, "dynamic_upstreams"); d != nil {
					t.Errorf("dynamic_upstreams %v beside the list", d)
				}
			}

			sel := path(proxy, "load_balancing", "selection_policy")
			if path(sel, "policy") != tc.policy {
				t.Errorf("selection policy = %v, want %s", sel, tc.policy)
			}
			if tc.policy == "cookie" {
				if path(sel, "name") != "fluxcode_sticky" {
					t.Errorf("cookie name = %v, want fluxcode_sticky", path(sel, "name"))
				}
				if got, _ := path(sel, "secret").(string); got != tc.cookieKey {
					t.Errorf("cookie secret = %q, want %q", got, tc.cookieKey)
				}
			}
			// No retries: without buffering the body, Caddy cannot resend it (see the file).
			if d := path(proxy, "load_balancing", "try_duration"); d != nil {
				t.Errorf("try_duration = %v; retries resend a closed request body", d)
			}

			active := path(proxy, "health_checks", "active")
			if path(active, "uri") != "/health/live" || num(path(active, "expect_status")) != 200 ||
				time.Duration(num(path(active, "interval"))) != tc.healthEvery || num(path(active, "timeout")) == 0 {
				t.Errorf("active health checks = %v, want /health/live, 200, every %v, a timeout", active, tc.healthEvery)
			}
			passive := path(proxy, "health_checks", "passive")
			if num(path(passive, "fail_duration")) == 0 || num(path(passive, "max_fails")) == 0 {
				t.Errorf("passive health checks = %v, want fail_duration and max_fails", passive)
			}
			if s := path(passive, "unhealthy_status"); s != nil {
				t.Errorf("unhealthy_status = %v: provider errors relayed by a healthy node would take it out", s)
			}

			if fi := path(proxy, "flush_interval"); num(fi) != -1 {
				t.Errorf("flush_interval = %v, want -1 (stream every event)", fi)
			}
			for _, k := range []string{"read_timeout", "write_timeout"} {
				if d := time.Duration(num(path(proxy, "transport", k))); d < 15*time.Minute {
					t.Errorf("transport %s = %v; long SSE silences (FluxCode allows 5 min) need longer", k, d)
				}
			}
			if h := path(proxy, "headers"); h != nil {
				t.Errorf("header rewrites %v: Caddy's own X-Forwarded-* are what FluxCode expects", h)
			}

			body := findHandler(cfg, "request_body")
			if max := int64(num(path(body, "max_size"))); max < defaults.Gateway.MaxBodyBytes {
				t.Errorf("request_body max_size = %d, below FluxCode's MAX_BODY_BYTES default %d: Caddy would answer oversized bodies instead of FluxCode", max, defaults.Gateway.MaxBodyBytes)
			}
		})
	}
}

func TestCaddyfileDomainGetsAutomaticHTTPS(t *testing.T) {
	cfg := mustAdapt(t, map[string]string{"CADDY_ADDRESS": "fluxcode.example.com"})
	srv := path(cfg, "apps", "http", "servers", "srv0")
	if got := path(srv, "listen").([]any); len(got) != 1 || got[0] != ":443" {
		t.Errorf("listen = %v, want [:443]", got)
	}
	if ah := path(srv, "automatic_https"); ah != nil {
		t.Errorf("automatic_https changed: %v", ah)
	}
	routes, _ := path(srv, "routes").([]any)
	if len(routes) == 0 {
		t.Fatal("no routes")
	}
	hosts := path(routes[0], "match")
	b, _ := json.Marshal(hosts)
	if !strings.Contains(string(b), `"fluxcode.example.com"`) {
		t.Errorf("site does not match the domain: %s", b)
	}
}

func TestCaddyfileValidates(t *testing.T) {
	// validate provisions every module (policies, health checkers, dynamic upstreams)
	// without starting a server.
	for _, env := range []map[string]string{
		{},
		{"FLUXCODE_UPSTREAMS": "to 127.0.0.11:8080 127.0.0.12:8080", "CADDY_STICKY_COOKIE": "off",
			"CADDY_ADDRESS": "http://127.0.0.1:18080", "CADDY_BIND": "127.0.0.1"},
	} {
		if out, err := caddyCLI(t, env, "validate", "--config", deployPath(caddyfileName), "--adapter", "caddyfile"); err != nil {
			t.Errorf("caddy validate with %v: %v\n%s", env, err, out)
		}
	}
}

func TestCaddyfileRejectsBadSettingsClearly(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string
	}{
		// An unknown switch names the snippet it looked for.
		{map[string]string{"CADDY_STICKY_COOKIE": "maybe"}, "sticky_maybe"},
		// A list without "to" is refused, not silently ignored.
		{map[string]string{"FLUXCODE_UPSTREAMS": "10.0.0.12:8080 10.0.0.13:8080"}, "10.0.0.12:8080"},
	}
	for _, tc := range cases {
		_, err := adapt(t, tc.env)
		if err == nil {
			t.Errorf("%v: adapt succeeded, want an error", tc.env)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %q does not mention %q", tc.env, err, tc.want)
		}
	}
}

func TestCaddyfileIsFormatted(t *testing.T) {
	out, err := caddyCLI(t, nil, "fmt", deployPath(caddyfileName))
	if err != nil {
		t.Fatal(err)
	}
	if want := readDeployFile(t, caddyfileName); string(out) != want {
		t.Errorf("caddy fmt would change deploy/%s; run: caddy fmt --overwrite deploy/%s", caddyfileName, caddyfileName)
	}
}

func writeTemp(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
