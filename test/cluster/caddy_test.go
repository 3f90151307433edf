package cluster

import (
	"net/http"
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

// reloadCaddyfile gives a running Caddy deploy/Caddyfile.multihost again with env laid over
// its environment, as an operator edits .env and runs `caddy reload`, while it keeps
// serving: Caddy reads {$VARS} when it adapts a file, which is how a new FLUXCODE_UPSTREAMS
// changes the upstream list.
func reloadCaddyfile(t testing.TB, cd *testenv.Caddy, env map[string]string) {
	t.Helper()
	if err := cd.ReloadEnv(readDeployFile(t, caddyfile), env); err != nil {
		t.Fatalf("reload deploy/%s: %v", caddyfile, err)
	}
	// The old configuration's server closes its connections, and for a moment after /load
	// returns it may still accept one and reset it; a POST sent on such a connection fails,
	// and Go retries only idempotent requests. So wait until several fresh connections in a
	// row are served, then drop the idle ones the harness's clients hold.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	deadline := time.Now().Add(proxyBound)
	for ok := 0; ok < 5; {
		resp, err := fresh.Get("http://" + cd.Addr() + "/health/live")
		if err == nil {
			resp.Body.Close()
		}
		if err == nil && resp.StatusCode == http.StatusOK {
			ok++
			continue
		}
		ok = 0
		if time.Now().After(deadline) {
			t.Fatalf("Caddy does not serve fresh connections after the reload (last error %v):\n%s", err, cd.LogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	http.DefaultClient.CloseIdleConnections()
}

// proxyBound bounds the wait for Caddy to proxy: far above a normal start, only there so a
// broken one fails the test instead of hanging it.
const proxyBound = 90 * time.Second

// waitProxying waits until /health through Caddy answers 200.
func waitProxying(t testing.TB, cd *testenv.Caddy, base string) {
	t.Helper()
	probe := testenv.HTTPReady(base + "/health")
	deadline := time.Now().Add(proxyBound)
	for {
		err := probe()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Caddy at %s does not proxy /health (last error %v):\n%s", base, err, cd.LogTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
