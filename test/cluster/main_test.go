// Package cluster proves the multi-host deployment of deploy/MULTI_HOST.md (issue 4) with
// real processes: the state host (a dedicated PostgreSQL and a password-protected,
// persistent Redis), the entry host (Caddy running deploy/Caddyfile.multihost itself, its
// upstream list given through FLUXCODE_UPSTREAMS), FluxCode nodes as separate processes of
// the built binary on 127.0.0.11–14, each with the environment an operator gets from
// deploy/.env.node.example and docker-compose.node.yml, and the provider mock.
//
// TestCluster starts one cluster and runs the scenarios of the issue against it in order,
// the destructive ones (restarts, a SIGKILL) last.
package cluster

import (
	"testing"

	"github.com/fluxcode/fluxcode/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
