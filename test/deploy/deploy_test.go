// Package deploy tests the files in deploy/: the compose files are loaded with the Compose
// specification's own loader (and run under Docker Engine: compose_run_test.go), the
// Caddyfile is adapted and run by the real Caddy binary in front of small HTTP servers, and
// the docs are checked against both.
package deploy

import (
	"path/filepath"
	"testing"

	"github.com/fluxcode/fluxcode/internal/testenv"
)

// deployDir is the deploy/ directory; go test runs in test/deploy.
var deployDir = filepath.Join("..", "..", "deploy")

func deployPath(name string) string { return filepath.Join(deployDir, name) }

func readDeployFile(t testing.TB, name string) string {
	t.Helper()
	return testenv.ReadRepoFile(t, "deploy/"+name)
}

func TestMain(m *testing.M) { testenv.Main(m) }
