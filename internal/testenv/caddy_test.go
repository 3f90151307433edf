package testenv

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const greetingCaddyfile = `http://{$CADDY_ADDR} {
	respond "{$GREETING}"
}
`

func TestCaddyReloadEnvTakesTheNewEnvironment(t *testing.T) {
	c := StartCaddy(t, greetingCaddyfile, map[string]string{"GREETING": "first"})
	url := "http://" + c.Addr() + "/"
	wantBody(t, url, "first", "before the reload")

	if err := c.ReloadEnv(greetingCaddyfile, map[string]string{"GREETING": "second"}); err != nil {
		t.Fatal(err)
	}
	wantBody(t, url, "second", "after ReloadEnv")
	// A plain Reload and a restart keep the environment ReloadEnv gave.
	if err := c.Reload(greetingCaddyfile); err != nil {
		t.Fatal(err)
	}
	wantBody(t, url, "second", "after Reload")
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	wantBody(t, url, "second", "after a restart")

	if err := c.ReloadEnv(greetingCaddyfile, map[string]string{"CADDY_ADMIN": "127.0.0.1:1"}); err == nil {
		t.Error("ReloadEnv moved the admin endpoint")
	}
	if err := c.ReloadEnv("this is { not a caddyfile", map[string]string{"GREETING": "third"}); err == nil {
		t.Error("ReloadEnv accepted a broken Caddyfile")
	}
	wantBody(t, url, "second", "after failed reloads")
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	wantBody(t, url, "second", "a restart after failed reloads")
}

func TestCaddyListensOnLoopbackOnly(t *testing.T) {
	c := StartCaddy(t, greetingCaddyfile, map[string]string{"GREETING": "hi"})
	// A site address alone makes Caddy listen on every interface (":PORT"); the
	// helper confines it.
	if got := listenAddrs(t, c); len(got) != 1 || got[0] != c.Addr() {
		t.Errorf("caddy listens on %v, want only %s", got, c.Addr())
	}
	err := c.Reload("http://{$CADDY_ADDR} {\n\tbind 0.0.0.0\n\trespond \"everywhere\"\n}\n")
	if err == nil || !strings.Contains(err.Error(), "not on loopback") {
		t.Errorf("Reload of a site bound to 0.0.0.0: %v; want a refusal", err)
	}
	wantBody(t, "http://"+c.Addr()+"/", "hi", "after the refused reload")
}

func listenAddrs(t *testing.T, c *Caddy) []string {
	t.Helper()
	resp, err := http.Get("http://" + c.AdminAddr() + "/config/apps/http/servers/srv0/listen")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var listen []string
	if err := json.NewDecoder(resp.Body).Decode(&listen); err != nil {
		t.Fatal(err)
	}
	return listen
}

// wantBody fails t unless GET url answers want.
// wantBody checks that url answers want on fresh connections. Right after a reload the old
// configuration's server may still answer on a connection it already had, so it asks a few
// times within a bound (a reload that never takes effect still fails).
func wantBody(t *testing.T, url, want, when string) {
	t.Helper()
	client := http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var got string
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("%s: GET %s: %v", when, url, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: GET %s: read body: %v", when, url, err)
		}
		if got = string(b); got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %q, want %q", when, got, want)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
