package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/webui"
)

// TestConsoleServed: the node serves the console at / and its deep links, keeps the JSON 404
// of API, gateway and operations paths, and asks the admin whose password was generated to
// change it.
func TestConsoleServed(t *testing.T) {
	m, out := startNode(t, singleEnv(t, t.TempDir()))
	base := "http://" + m.Addr()
	for _, p := range []string{"/", "/admin/users"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			resp.Header.Get("Content-Security-Policy") != webui.CSP || !strings.Contains(string(body), `id="app"`) {
			t.Fatalf("GET %s: %d %v %.200s", p, resp.StatusCode, resp.Header, body)
		}
	}
	for _, p := range []string{"/v1/nope", "/api/v1/nope", "/v1beta/nope"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("GET %s: %d %s, want a JSON 404", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}

	match := passwordLine.FindStringSubmatch(out.String())
	if match == nil {
		t.Fatalf("no generated password in %s", out)
	}
	token := login(t, base, match[1], match[2])
	_, body := do(t, "GET", base+"/api/v1/me", token, nil)
	var me struct {
		MustChange bool `json:"must_change_password"`
	}
	if err := json.Unmarshal(body, &me); err != nil || !me.MustChange {
		t.Fatalf("the generated admin password is not marked for change: %s", body)
	}
}
