// Package startup tests FluxCode as operators run it: the built binary, started from a fresh
// directory, alone on SQLite or three at once on one PostgreSQL and Redis.
package startup

import (
	"regexp"
	"testing"

	"github.com/fluxcode/fluxcode/internal/app"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// buildFluxcode builds cmd/fluxcode (once per test binary) and returns the binary's path.
func buildFluxcode(t *testing.T) string {
	return testenv.BuildBinary(t, "github.com/fluxcode/fluxcode/cmd/fluxcode")
}

// node is one `fluxcode serve` process.
type node struct {
	*testenv.Process
	addr string // host:port it serves on
}

// newNode prepares (without starting) `fluxcode serve` in dir with exactly env (plus PATH and
// HOME), serving on addr.
func newNode(t *testing.T, bin, name, dir, addr string, env map[string]string) *node {
	t.Helper()
	p := testenv.NewProcess(t, bin, testenv.ProcessOptions{Name: name, Args: []string{"serve"}, Dir: dir, Env: env})
	return &node{Process: p, addr: addr}
}

func (n *node) base() string { return "http://" + n.addr }

// waitHealthy polls /health until it answers 200; it fails if the process exits first.
func (n *node) waitHealthy(t *testing.T) {
	t.Helper()
	n.WaitReady(t, testenv.HTTPReady(n.base()+"/health"))
}

// stop sends SIGTERM and waits for a clean exit.
func (n *node) stop(t *testing.T) {
	t.Helper()
	if err := n.Terminate(t); err != nil {
		t.Errorf("%s exited with %v after SIGTERM:\n%s", n.Name(), err, n.Output())
	}
}

var passwordLine = regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(app.AdminPasswordLine) + ` email=(\S+) password=(\S+)$`)

// passwordLines returns every generated-password line's (email, password).
func passwordLines(s string) [][2]string {
	var out [][2]string
	for _, m := range passwordLine.FindAllStringSubmatch(s, -1) {
		out = append(out, [2]string{m[1], m[2]})
	}
	return out
}

// runCLI runs a fluxcode subcommand to completion with exactly env (plus PATH) and returns
// its exit code and output.
func runCLI(t *testing.T, bin string, env map[string]string, args ...string) (int, string) {
	t.Helper()
	res := testenv.Run(t, bin, testenv.ProcessOptions{Name: "fluxcode", Args: args, Env: env})
	return res.ExitCode, res.Output
}
