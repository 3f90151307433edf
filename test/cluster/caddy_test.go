package cluster

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// upstreams is FLUXCODE_UPSTREAMS for the given nodes: the Caddyfile's mode B, a fixed list.
func upstreams(nodes []*node) string {
	addrs := make([]string, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.addr()
	}
	return "to " + strings.Join(addrs, " ")
}

// caddyEnvFor is the entry host's environment: the site on a loopback address and port over
// plain HTTP, the nodes as a fixed list, and the sticky cookie on or off.
func caddyEnvFor(site string, nodes []*node, sticky bool) map[string]string {
	env := map[string]string{
		"CADDY_ADDR":            site, // testenv's name for the site address
		"CADDY_ADDRESS":         "http://" + site,
		"CADDY_BIND":            "127.0.0.1",
		"FLUXCODE_UPSTREAMS":    upstreams(nodes),
		"CADDY_HEALTH_INTERVAL": healthInterval.String(),
		"CADDY_STICKY_COOKIE":   "off",
	}
	if sticky {
		env["CADDY_STICKY_COOKIE"] = "on"
		env["CADDY_LB_COOKIE_SECRET"] = secret.NewMasterKey()[:32]
	}
	return env
}

// startEntry starts an entry host: Caddy (through testenv) on deploy/Caddyfile.multihost
// under env, and waits until it proxies /health.
func startEntry(t *testing.T, env map[string]string) *testenv.Caddy {
	t.Helper()
	cd := testenv.StartCaddy(t, readDeployFile(t, caddyfile), env)
	waitProxying(t, cd, "http://"+env["CADDY_ADDR"])
	return cd
}

// reloadCaddyfile gives a running Caddy deploy/Caddyfile.multihost again under a changed
// env, the way `caddy reload` does, while it keeps serving: the file is adapted with env
// (Caddy reads {$VARS} when it adapts a file, which is how a new FLUXCODE_UPSTREAMS changes
// the upstream list) and the result is loaded through the admin endpoint. (testenv's Reload
// adapts with the environment Caddy started with.) The admin endpoint stays where testenv
// put it; the file leaves it to Caddy's default.
func reloadCaddyfile(t testing.TB, cd *testenv.Caddy, env map[string]string) {
	t.Helper()
	bin := testenv.RequireBinary(t, "caddy", "caddy")
	home := t.TempDir()
	cmd := exec.Command(bin, "adapt", "--config", deployPath(caddyfile), "--adapter", "caddyfile")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + home, "XDG_CONFIG_HOME=" + home, "XDG_DATA_HOME=" + home}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	adapted, err := cmd.Output()
	if err != nil {
		t.Fatalf("caddy adapt deploy/%s: %v\n%s", caddyfile, err, stderr.String())
	}
	var cfg map[string]any
	dec := json.NewDecoder(bytes.NewReader(adapted))
	dec.UseNumber() // durations are integers of nanoseconds: keep them exact
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("caddy adapt output: %v", err)
	}
	servers, _ := path(cfg, "apps", "http", "servers").(map[string]any)
	if len(servers) == 0 {
		t.Fatalf("deploy/%s adapted to no HTTP server:\n%s", caddyfile, adapted)
	}
	for name, srv := range servers {
		listen, _ := path(srv, "listen").([]any)
		if len(listen) == 0 {
			t.Fatalf("server %s of deploy/%s listens nowhere", name, caddyfile)
		}
		for _, l := range listen { // tests listen on loopback only
			addr, _ := l.(string)
			if host, _, err := net.SplitHostPort(addr); err != nil || !net.ParseIP(host).IsLoopback() {
				t.Fatalf("server %s of deploy/%s would listen on %q, not on loopback", name, caddyfile, addr)
			}
		}
	}
	cfg["admin"] = map[string]any{"listen": cd.AdminAddr()}
	body, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}

	req, _ := http.NewRequest(http.MethodPost, "http://"+cd.AdminAddr()+"/load", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("caddy /load: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("caddy /load: %s\n%s", resp.Status, cd.LogTail())
	}
	// The old configuration's server closes its idle keep-alive connections; a POST sent on
	// one at that moment fails with EOF, and Go retries only idempotent requests.
	http.DefaultClient.CloseIdleConnections()
}

// path walks nested JSON objects; nil when a key is missing.
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

// waitProxying waits until /health through Caddy answers 200.
func waitProxying(t testing.TB, cd *testenv.Caddy, base string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(processBound)
	for {
		resp, err := client.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Caddy at %s does not proxy /health (last error %v):\n%s", base, err, cd.LogTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
