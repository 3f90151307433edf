package cluster

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/fluxcode/fluxcode/internal/config"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// deployDir holds the operator's files; the harness reads them, never copies of them.
const deployDir = "../../deploy"

const (
	nodeEnvExample = ".env.node.example"
	nodeCompose    = "docker-compose.node.yml"
	caddyfile      = "Caddyfile.multihost"
)

func deployPath(name string) string { return filepath.Join(deployDir, name) }

func readDeployFile(t testing.TB, name string) string {
	t.Helper()
	return testenv.ReadRepoFile(t, "deploy/"+name)
}

// nodeEnvFile is deploy/.env.node.example as docker compose reads it.
func nodeEnvFile(t testing.TB) map[string]string {
	t.Helper()
	env, err := dotenv.GetEnvFromFile(map[string]string{}, []string{deployPath(nodeEnvExample)})
	if err != nil {
		t.Fatalf("parse deploy/%s: %v", nodeEnvExample, err)
	}
	return env
}

// checkNodeEnvFile checks that every variable of the example is one the node reads: either
// a FluxCode variable (config.EnvNames) or one that docker-compose.node.yml interpolates
// into the node's environment or its container settings (POSTGRES_* → DATABASE_*,
// NODE_BIND_HOST/NODE_PORT → the published port, FLUXCODE_IMAGE → the image). A variable in
// neither would be a setting an operator fills in for nothing.
func checkNodeEnvFile(t testing.TB, env map[string]string) {
	t.Helper()
	known := knownVars()
	compose := readDeployFile(t, nodeCompose)
	for name := range env {
		if !known[name] && !strings.Contains(compose, "${"+name) {
			t.Errorf("deploy/%s sets %s, which neither FluxCode (config.EnvNames) nor deploy/%s reads",
				nodeEnvExample, name, nodeCompose)
		}
	}
}

func knownVars() map[string]bool {
	known := map[string]bool{}
	for _, name := range config.EnvNames() {
		known[name] = true
	}
	return known
}

// renderNodeEnv is the environment of one node as the deploy gives it: the operator's .env
// (the example with fill written over it; every filled variable must exist in the example)
// interpolated into docker-compose.node.yml's fluxcode service, then what Docker does
// outside the container, done here by hand: the published address NODE_BIND_HOST:NODE_PORT
// is where the node listens, and the /data volume is dataDir.
func renderNodeEnv(t testing.TB, fill map[string]string, dataDir string) map[string]string {
	t.Helper()
	env := nodeEnvFile(t)
	for k, v := range fill {
		if _, ok := env[k]; !ok {
			t.Fatalf("the harness fills %s, which deploy/%s does not define", k, nodeEnvExample)
		}
		env[k] = v
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  deployDir,
		ConfigFiles: []types.ConfigFile{{Filename: deployPath(nodeCompose)}},
		Environment: env,
	})
	if err != nil {
		t.Fatalf("load deploy/%s with the filled-in deploy/%s: %v", nodeCompose, nodeEnvExample, err)
	}
	svc, ok := p.Services["fluxcode"]
	if !ok {
		t.Fatalf("deploy/%s has no fluxcode service", nodeCompose)
	}
	out := map[string]string{}
	known := knownVars()
	for k, v := range svc.Environment {
		if !known[k] {
			t.Errorf("deploy/%s sets %s for fluxcode, which FluxCode does not read (config.EnvNames)", nodeCompose, k)
		}
		if v != nil {
			out[k] = *v
		}
	}
	if out["SERVER_PORT"] != "8080" || out["DATA_DIR"] != "/data" {
		t.Fatalf("deploy/%s: SERVER_PORT=%q DATA_DIR=%q; the harness maps port 8080 and /data", nodeCompose, out["SERVER_PORT"], out["DATA_DIR"])
	}
	out["SERVER_HOST"], out["SERVER_PORT"] = env["NODE_BIND_HOST"], env["NODE_PORT"]
	out["DATA_DIR"] = dataDir
	// The mock upstream listens on loopback, which nodes refuse as an upstream by default.
	out["UPSTREAM_ALLOWED_NETWORKS"] = "127.0.0.0/8"

	cfg, err := config.Load(config.MapEnv(out))
	if err != nil {
		t.Fatalf("FluxCode refuses the rendered node environment: %v", err)
	}
	if !cfg.Cluster() {
		t.Fatalf("the rendered node environment runs in %s mode, want cluster", cfg.Mode())
	}
	return out
}

// sortedKeys lists m's keys in order, for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
