package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const caddyPackage = "caddy"

// Caddy is a caddy server started from a Caddyfile.
//
// The helper owns two ports and hands them to the Caddyfile through the
// environment (caller-supplied env wins):
//
//	CADDY_ADDR       127.0.0.1:PORT, a free port for the site: write the
//	                 site address as http://{$CADDY_ADDR} (an http:// scheme,
//	                 or Caddy would serve HTTPS with its internal CA)
//	CADDY_HTTP_PORT  that PORT alone
//	CADDY_ADMIN      127.0.0.1:PORT of the admin endpoint
//
// The helper adapts the Caddyfile itself ("caddy adapt", which is when
// Caddy substitutes {$VARS}) and runs Caddy on the result, changed in two
// ways: the admin endpoint is always CADDY_ADMIN (never Caddy's default
// localhost:2019, on which parallel tests would collide), and every site
// listens on loopback only: a listen address without a host (":PORT", what
// a site address alone gives) gets 127.0.0.1, and one on any other host is
// refused.
type Caddy struct {
	path      string
	dir       string
	file      string   // the Caddyfile last loaded, for people reading a failure
	config    string   // its adapted JSON, what Caddy runs (and restarts) on
	env       []string // what the Caddyfile is adapted under: CADDY_* and env
	addr      string
	adminAddr string
	server    // Stop, Start (with the current configuration), Restart, LogTail
}

// StartCaddy starts Caddy on caddyfile adapted under env (added to the
// environment above) and waits until the admin endpoint answers. Caddy is
// stopped and its files removed when t ends.
func StartCaddy(t testing.TB, caddyfile string, env map[string]string) *Caddy {
	t.Helper()
	path := RequireBinary(t, "caddy", caddyPackage)
	c, err := newCaddy(path, caddyfile, env)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(c.close)
	return c
}

// newCaddy starts the caddy binary at path on caddyfile (see StartCaddy).
func newCaddy(path, caddyfile string, env map[string]string) (*Caddy, error) {
	dir, err := os.MkdirTemp("", "fluxcode-caddy-")
	if err != nil {
		return nil, fmt.Errorf("caddy temp dir: %w", err)
	}
	c := &Caddy{path: path, dir: dir, file: filepath.Join(dir, "Caddyfile"), config: filepath.Join(dir, "caddy.json")}
	fail := func(err error) (*Caddy, error) {
		c.close()
		return nil, err
	}
	sitePort, err := freePortOn("127.0.0.1")
	if err != nil {
		return fail(err)
	}
	adminPort, err := freePortOn("127.0.0.1")
	if err != nil {
		return fail(err)
	}
	vars := map[string]string{
		"CADDY_ADDR":      loopbackAddr(sitePort),
		"CADDY_ADMIN":     loopbackAddr(adminPort),
		"XDG_CONFIG_HOME": filepath.Join(dir, "config"),
		"XDG_DATA_HOME":   filepath.Join(dir, "data"),
		"HOME":            dir,
		"PATH":            "/usr/bin:/bin",
	}
	maps.Copy(vars, env)
	c.addr, c.adminAddr = vars["CADDY_ADDR"], vars["CADDY_ADMIN"]
	if _, ok := env["CADDY_HTTP_PORT"]; !ok {
		vars["CADDY_HTTP_PORT"] = c.addr[strings.LastIndexByte(c.addr, ':')+1:]
	}
	c.env = envList(vars)
	cfg, err := c.adapt(caddyfile, c.env)
	if err != nil {
		return fail(err)
	}
	if err := c.keep(caddyfile, cfg); err != nil {
		return fail(err)
	}
	c.server = server{
		probe: c.adminReady,
		proc: &process{
			name: "caddy", path: path,
			args: []string{"run", "--config", c.config},
			env:  c.env, dir: dir, logPath: filepath.Join(dir, "caddy.log"),
			stopSig: syscall.SIGTERM,
		},
	}
	if err := c.Start(); err != nil {
		return fail(err)
	}
	return c, nil
}

// close stops Caddy and removes its files.
func (c *Caddy) close() {
	if c.proc != nil {
		_ = c.Stop()
	}
	_ = os.RemoveAll(c.dir)
}

// Addr is the site address offered to the Caddyfile as {$CADDY_ADDR}.
func (c *Caddy) Addr() string { return c.addr }

// AdminAddr is the admin endpoint's host:port.
func (c *Caddy) AdminAddr() string { return c.adminAddr }

// Reload replaces the configuration with caddyfile, adapted under the
// environment Caddy has, through the admin endpoint's /load, as "caddy
// reload" does; Caddy keeps serving throughout. A Caddyfile that does not
// adapt or load leaves the running configuration as it was.
func (c *Caddy) Reload(caddyfile string) error { return c.ReloadEnv(caddyfile, nil) }

// ReloadEnv is Reload with env laid over Caddy's environment, the way an
// operator edits .env and reloads: the Caddyfile is adapted under the new
// environment, so a changed {$VAR} takes effect. Later reloads and restarts
// keep the new environment. CADDY_ADMIN cannot change.
func (c *Caddy) ReloadEnv(caddyfile string, env map[string]string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	vars := map[string]string{}
	for _, kv := range c.env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	if a, ok := env["CADDY_ADMIN"]; ok && a != c.adminAddr {
		return fmt.Errorf("caddy reload: CADDY_ADMIN cannot change (%s, not %s)", c.adminAddr, a)
	}
	maps.Copy(vars, env)
	newEnv := envList(vars)
	cfg, err := c.adapt(caddyfile, newEnv)
	if err != nil {
		return err
	}
	if err := c.load(cfg); err != nil {
		return err
	}
	c.env, c.proc.env = newEnv, newEnv
	if a := vars["CADDY_ADDR"]; a != "" {
		c.addr = a
	}
	return c.keep(caddyfile, cfg)
}

// adapt turns caddyfile into Caddy's JSON under env, with the admin endpoint
// and loopback listen addresses described at Caddy.
func (c *Caddy) adapt(caddyfile string, env []string) ([]byte, error) {
	src, err := os.CreateTemp(c.dir, "Caddyfile.*")
	if err != nil {
		return nil, fmt.Errorf("caddy adapt: %w", err)
	}
	defer os.Remove(src.Name())
	_, err = src.WriteString(caddyfile)
	if cerr := src.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("caddy adapt: write the Caddyfile: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.path, "adapt", "--config", src.Name(), "--adapter", "caddyfile")
	cmd.Env, cmd.Dir = env, c.dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("caddy adapt: %w\n%s", err, stderr.String())
	}
	return loopbackConfig(out, c.adminAddr)
}

// loopbackConfig sets the admin endpoint of Caddy's JSON config to admin and
// confines every HTTP server to loopback (see Caddy).
func loopbackConfig(adapted []byte, admin string) ([]byte, error) {
	var cfg map[string]any
	dec := json.NewDecoder(bytes.NewReader(adapted))
	dec.UseNumber() // durations are integers of nanoseconds: keep them exact
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("caddy adapt printed no JSON config: %w\n%s", err, adapted)
	}
	adminCfg, _ := cfg["admin"].(map[string]any)
	if adminCfg == nil {
		adminCfg = map[string]any{}
	}
	adminCfg["listen"] = admin
	cfg["admin"] = adminCfg
	apps, _ := cfg["apps"].(map[string]any)
	httpApp, _ := apps["http"].(map[string]any)
	servers, _ := httpApp["servers"].(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(servers)) {
		srv, _ := servers[name].(map[string]any)
		listen, _ := srv["listen"].([]any)
		for i, l := range listen {
			addr, _ := l.(string)
			confined, err := loopbackListen(addr)
			if err != nil {
				return nil, fmt.Errorf("caddy server %s: %w", name, err)
			}
			listen[i] = confined
		}
	}
	return json.Marshal(cfg)
}

// loopbackListen confines one Caddy listen address ([network/]host:port) to
// loopback: no host becomes 127.0.0.1; another host than a loopback one is
// an error.
func loopbackListen(addr string) (string, error) {
	network, hostport := "", addr
	if i := strings.Index(addr, "/"); i >= 0 {
		network, hostport = addr[:i+1], addr[i+1:]
	}
	host, port, err := net.SplitHostPort(hostport)
	switch {
	case err != nil:
		return "", fmt.Errorf("listen address %q: %w", addr, err)
	case host == "":
		return network + net.JoinHostPort("127.0.0.1", port), nil
	case host == "localhost":
		return addr, nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("listen address %q is not on loopback: tests listen on 127.0.0.0/8 or ::1 only", addr)
	}
	return addr, nil
}

// load gives Caddy the JSON config cfg through the admin endpoint.
func (c *Caddy) load(cfg []byte) error {
	client := http.Client{Timeout: readyTimeout}
	resp, err := client.Post("http://"+c.adminAddr+"/load", "application/json", bytes.NewReader(cfg))
	if err != nil {
		return fmt.Errorf("caddy /load: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("caddy /load: %s: %s\n%s", resp.Status, bytes.TrimSpace(body), c.proc.logTail())
	}
	return nil
}

// keep writes the Caddyfile and the config Caddy now runs on: a restart
// starts on it.
func (c *Caddy) keep(caddyfile string, cfg []byte) error {
	if err := os.WriteFile(c.file, []byte(caddyfile), 0o644); err != nil {
		return fmt.Errorf("write Caddyfile: %w", err)
	}
	if err := os.WriteFile(c.config, cfg, 0o644); err != nil {
		return fmt.Errorf("write caddy.json: %w", err)
	}
	return nil
}

func (c *Caddy) adminReady() error {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + c.adminAddr + "/config/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("caddy admin: status %s", resp.Status)
	}
	return nil
}

// envList turns vars into a sorted NAME=value list.
func envList(vars map[string]string) []string {
	env := make([]string, 0, len(vars))
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, k+"="+vars[k])
	}
	return env
}
