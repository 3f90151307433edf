package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
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
// The admin address is injected as the global option "admin {$CADDY_ADMIN}":
// into the Caddyfile's global options block when it starts with one, or as a
// new block otherwise. A Caddyfile that already mentions {$CADDY_ADMIN} is
// left as written. Never set another admin address: parallel tests would
// collide on Caddy's default localhost:2019.
type Caddy struct {
	path      string
	dir       string
	file      string
	env       []string
	addr      string
	adminAddr string
	server    // Stop, Start (with the current Caddyfile), Restart, LogTail
}

// StartCaddy writes caddyfile, starts "caddy run" on it with env added to
// the environment and waits until the admin endpoint answers. Caddy is
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
	c := &Caddy{path: path, dir: dir, file: filepath.Join(dir, "Caddyfile")}
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
	for k, v := range env {
		vars[k] = v
	}
	c.addr, c.adminAddr = vars["CADDY_ADDR"], vars["CADDY_ADMIN"]
	if _, ok := env["CADDY_HTTP_PORT"]; !ok {
		vars["CADDY_HTTP_PORT"] = c.addr[strings.LastIndexByte(c.addr, ':')+1:]
	}
	for k, v := range vars {
		c.env = append(c.env, k+"="+v)
	}
	sort.Strings(c.env)
	if err := c.writeCaddyfile(caddyfile); err != nil {
		return fail(err)
	}
	c.server = server{
		probe: c.adminReady,
		proc: &process{
			name: "caddy", path: path,
			args: []string{"run", "--config", c.file, "--adapter", "caddyfile"},
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

// Reload replaces the configuration with caddyfile through "caddy reload"
// against the admin endpoint; Caddy keeps serving throughout.
func (c *Caddy) Reload(caddyfile string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.writeCaddyfile(caddyfile); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.path, "reload", "--config", c.file, "--adapter", "caddyfile", "--address", c.adminAddr)
	cmd.Env = c.env
	cmd.Dir = c.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("caddy reload: %w\n%s\n%s", err, out, c.proc.logTail())
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

func (c *Caddy) writeCaddyfile(caddyfile string) error {
	if err := os.WriteFile(c.file, []byte(withAdmin(caddyfile)), 0o644); err != nil {
		return fmt.Errorf("write Caddyfile: %w", err)
	}
	return nil
}

// withAdmin adds "admin {$CADDY_ADMIN}" to the Caddyfile's global options,
// unless it already refers to {$CADDY_ADMIN}.
func withAdmin(caddyfile string) string {
	const directive = "\tadmin {$CADDY_ADMIN}\n"
	if strings.Contains(caddyfile, "{$CADDY_ADMIN}") {
		return caddyfile
	}
	// The global options block, when present, is the first token: a "{"
	// alone on its line (comments and blank lines may precede it).
	sc := bufio.NewScanner(strings.NewReader(caddyfile))
	offset := 0
	for sc.Scan() {
		line := sc.Text()
		next := offset + len(line) + 1
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			offset = next
			continue
		}
		if trimmed == "{" {
			if next > len(caddyfile) { // "{" on the last line, no newline
				return caddyfile + "\n" + directive
			}
			return caddyfile[:next] + directive + caddyfile[next:]
		}
		break
	}
	return "{\n" + directive + "}\n\n" + caddyfile
}
