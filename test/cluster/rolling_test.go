package cluster

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/testenv"
)

// drainDelay is SERVER_DRAIN_DELAY for the rolling upgrade: like the default (6s against
// Caddy's 5s), a little more than the health interval, so that Caddy's active check has
// probed the draining node before it stops accepting.
const drainDelay = 2*healthInterval + healthInterval/2

// rollingShape mixes JSON answers with streams of a few seconds, so that a restart always
// finds streams in flight on the node it stops.
func rollingShape(n int) shape {
	if n%3 == 0 {
		return shape{events: 3}
	}
	return shape{stream: true, events: 20, interval: 150 * time.Millisecond}
}

// TestRollingUpgrade restarts each of three nodes in turn with SIGTERM under steady load
// through Caddy (deploy/Caddyfile.multihost, no sticky cookie), starting the replacement and
// waiting until Caddy sends it requests before the next: no client request fails, every
// answer is in the ledger once, and no slot is left held.
func TestRollingUpgrade(t *testing.T) {
	bin := buildFluxcode(t)
	c := startConfigured(&cluster{t: t, bin: bin, nodeEnv: func(*cluster) map[string]string {
		return map[string]string{"SERVER_DRAIN_DELAY": drainDelay.String()}
	}})
	tn := c.newTenant(t, "rolling", accountSpec{concurrency: 64})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var outs []outcome
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		outs = load{workers: 8, targets: []string{c.entry}, shape: rollingShape}.run(ctx, tn.key)
	}()

	for i := range c.nodes {
		old := c.nodes[i]
		waitServing(t, old)
		stopped := time.Now()
		if err := old.Terminate(t); err != nil {
			t.Errorf("%s exited with %v after SIGTERM", old.name, err)
		}
		t.Logf("%s stopped by SIGTERM at %s, exited after %s", old.name, stopped.Format(clock),
			time.Since(stopped).Round(100*time.Millisecond))
		checkDrained(t, old)

		// The new version on the same address, as an operator restarts a node.
		next := newNode(t, c.bin, old.name, old.ip, old.port, t.TempDir(), old.env)
		testenv.StartAll(t, next)
		next.waitHealthy(t)
		c.nodes[i] = next
	}
	for _, n := range c.nodes {
		waitServing(t, n)
	}
	cancel()
	<-loaded

	requireComplete(t, outs)
	c.checkMockAgrees(t, tn, c.checkBilling(t, tn, outs, true))
	c.waitNoSlots(t)
}

// waitServing waits until Caddy has sent n some gateway requests, i.e. n is in rotation.
func waitServing(t *testing.T, n *node) {
	t.Helper()
	deadline := time.Now().Add(proxyBound)
	for n.served(t, "/v1/messages") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("Caddy sent %s no requests within %s", n.name, proxyBound)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkDrained checks, from n's own log, the order of its stop: Caddy's probe saw
// /health/live answer 503 (so the drain lasted past a probe), and n still answered gateway
// requests after it began to drain.
func checkDrained(t *testing.T, n *node) {
	t.Helper()
	draining, probed, servedAfter := false, false, 0
	for _, r := range n.logRecords(t) {
		switch {
		case r.Msg == "draining: reporting not-ready, still serving":
			draining = true
		case !draining || r.Msg != "http request":
		case r.Path == "/health/live" && r.Status == http.StatusServiceUnavailable:
			probed = true
		case r.Path == "/v1/messages":
			servedAfter++
		}
	}
	if !draining {
		t.Errorf("%s did not drain on SIGTERM", n.name)
	}
	if !probed {
		t.Errorf("%s: no /health/live probe saw 503 while it drained; SERVER_DRAIN_DELAY %s is shorter than Caddy's health interval %s",
			n.name, drainDelay, healthInterval)
	}
	t.Logf("%s: answered %d gateway requests after it began to drain", n.name, servedAfter)
}

// waitNoSlots waits until no concurrency slot or queue place is held in Redis.
func (c *cluster) waitNoSlots(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(slotFreeBound)
	for {
		n := c.countSlots(t)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d slots still held %s after the load ended", n, slotFreeBound)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
