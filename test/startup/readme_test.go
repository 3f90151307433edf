package startup

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fluxcode/fluxcode/internal/testenv"
)

// TestReadmeRunPath follows the README's run command on a fresh directory (issue 2, must-show
// 1): the binary starts with nothing configured but a loopback port, serves /health = 200 on
// SQLite in ./data, prints the generated admin password once, and that password logs in.
// `fluxcode health` agrees while it runs and after it stops; a restart prints no password.
func TestReadmeRunPath(t *testing.T) {
	bin := buildFluxcode(t)
	dir := t.TempDir()
	port := strconv.Itoa(testenv.FreePort(t))
	env := map[string]string{"SERVER_HOST": "127.0.0.1", "SERVER_PORT": port}
	addr := net.JoinHostPort("127.0.0.1", port)

	n := newNode(t, bin, "fluxcode", dir, addr, env)
	testenv.StartAll(t, n)
	n.waitHealthy(t)

	lines := passwordLines(n.Output())
	if len(lines) != 1 {
		t.Fatalf("want exactly one generated-password line, got %d:\n%s", len(lines), n.Output())
	}
	email, password := lines[0][0], lines[0][1]
	token := testenv.Login(t, n.base(), email, password)
	if code, body := testenv.CallJSON(t, "GET", n.base()+"/api/v1/me", token, nil); code != 200 || !strings.Contains(string(body), email) {
		t.Errorf("/api/v1/me: %d %s", code, body)
	}
	for _, f := range []string{"data/fluxcode.db", "data/encryption.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not created in the working directory: %v", f, err)
		}
	}

	if code, out := runCLI(t, bin, env, "health"); code != 0 || !strings.Contains(out, `"status":"ok"`) {
		t.Errorf("fluxcode health on a running node: exit %d\n%s", code, out)
	}
	n.stop(t)
	if code, _ := runCLI(t, bin, env, "health"); code != 1 {
		t.Errorf("fluxcode health on a stopped node: exit %d, want 1", code)
	}

	again := newNode(t, bin, "fluxcode (restart)", dir, addr, env)
	testenv.StartAll(t, again)
	again.waitHealthy(t)
	if got := passwordLines(again.Output()); len(got) != 0 {
		t.Errorf("restart printed a password line: %v", got)
	}
	testenv.Login(t, again.base(), email, password)
	again.stop(t)
}
