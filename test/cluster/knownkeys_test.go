package cluster

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// knownKeys is a handful of keys, each its own user, that every node has served (so each
// node knows them without asking PostgreSQL), under steady load until stop: the set-up of
// the PostgreSQL outage and failover scenarios.
type knownKeys struct {
	tenants []*tenant
	// warm is, per key, its warming request through each node.
	warm [][]outcome
	// outs is, per key, what the load sent; read it only once stop has returned.
	outs   [][]outcome
	cancel context.CancelFunc
	loads  sync.WaitGroup
}

// newTenants creates count tenants, named prefix-0, prefix-1, …
func (c *cluster) newTenants(t *testing.T, prefix string, count int) []*tenant {
	t.Helper()
	var tenants []*tenant
	for i := range count {
		tenants = append(tenants, c.newTenant(t, fmt.Sprintf("%s-%d", prefix, i), accountSpec{}))
	}
	return tenants
}

// loadKnownKeys makes every node learn every tenant's key (one request each through every
// node, which must complete), then puts each key under steady load of outageShape: for each
// key viaCaddy workers send through Caddy and one straight to each node.
func (c *cluster) loadKnownKeys(t *testing.T, client *http.Client, nodes []*node, tenants []*tenant, viaCaddy int) *knownKeys {
	t.Helper()
	k := &knownKeys{tenants: tenants, warm: make([][]outcome, len(tenants)), outs: make([][]outcome, len(tenants))}
	for i, tn := range tenants {
		for _, n := range nodes {
			o := send(context.Background(), client, n.base(), tn.key, quick, 0, nil)
			if !o.complete {
				t.Fatalf("warming %s with %s's key: %s", n.name, tn.name, o)
			}
			k.warm[i] = append(k.warm[i], o)
		}
	}

	var targets []string
	for range viaCaddy {
		targets = append(targets, c.entry)
	}
	for _, n := range nodes {
		targets = append(targets, n.base())
	}
	var ctx context.Context
	ctx, k.cancel = context.WithCancel(context.Background())
	for i, tn := range tenants {
		k.loads.Add(1)
		go func() {
			defer k.loads.Done()
			k.outs[i] = load{workers: len(targets), targets: targets, shape: outageShape}.run(ctx, tn.key)
		}()
	}
	return k
}

// stop ends the load and waits for it; calling it again does nothing more.
func (k *knownKeys) stop() {
	k.cancel()
	k.loads.Wait()
}
