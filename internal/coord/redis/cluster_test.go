package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/coord/coordtest"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// The contract suites on a real Redis Cluster of three masters and three replicas: every
// script's keys must share a slot (or Cluster refuses it with CROSSSLOT), and what two
// nodes share must be shared across the masters.
func TestClusterContract(t *testing.T) {
	rc := testenv.StartRedisCluster(t, testenv.WithPassword("cluster-pw"))
	clusterOpts := func(prefix string) Options {
		return Options{Addrs: rc.Addrs(), Cluster: true, Password: rc.Password(), KeyPrefix: prefix}
	}
	t.Run("Contract", func(t *testing.T) {
		coordtest.Run(t, func(t *testing.T) coord.Coordinator { return mustNew(t, clusterOpts(uniquePrefix())) })
	})
	t.Run("Shared", func(t *testing.T) {
		prefix := uniquePrefix()
		coordtest.RunShared(t, func(t *testing.T) (coord.Coordinator, coord.Coordinator) {
			return mustNew(t, clusterOpts(prefix)), mustNew(t, clusterOpts(prefix))
		})
	})
	// A loss on a cluster is every master losing its data (each restarted empty, or failed
	// over to a replica that lacked the latest writes): FLUSHALL on each.
	t.Run("Loss", func(t *testing.T) {
		coordtest.RunLoss(t, func(t *testing.T) (coord.Coordinator, coord.Coordinator, func()) {
			prefix := uniquePrefix()
			return mustNew(t, clusterOpts(prefix)), mustNew(t, clusterOpts(prefix)), func() {
				masters, err := rc.Masters()
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range masters {
					if _, err := rc.Command(m, "FLUSHALL"); err != nil {
						t.Fatalf("FLUSHALL on %s: %v", m, err)
					}
				}
			}
		})
	})
}

// Rate windows of different scopes spread over the masters, each call's windows on one.
func TestClusterRateScopesSpread(t *testing.T) {
	rc := testenv.StartRedisCluster(t)
	c := mustNew(t, Options{Addrs: rc.Addrs(), Cluster: true, KeyPrefix: uniquePrefix()})
	ctx := context.Background()
	for i := range 100 {
		scope := fmt.Sprintf("user:%d", i)
		ok, _, err := c.TakeRate(ctx, coord.RateReq{Key: "rpm:" + scope, Scope: scope, Limit: 5, Cost: 1, Window: time.Minute},
			coord.RateReq{Key: fmt.Sprintf("rpm:key:%d", i), Scope: scope, Limit: 5, Cost: 1, Window: time.Minute})
		if err != nil || !ok {
			t.Fatalf("TakeRate %s: %v %v", scope, ok, err)
		}
	}
	if _, _, err := c.TakeRate(ctx, coord.RateReq{Key: "a", Scope: "x", Limit: 1, Cost: 1, Window: time.Minute},
		coord.RateReq{Key: "b", Scope: "y", Limit: 1, Cost: 1, Window: time.Minute}); err == nil {
		t.Errorf("TakeRate accepted windows of two scopes in one call")
	}
	masters, err := rc.Masters()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range masters {
		n, err := rc.Command(m, "DBSIZE")
		if err != nil {
			t.Fatal(err)
		}
		if n[0] == "0" {
			t.Errorf("master %s holds no key of 100 scopes", m)
		}
		t.Logf("master %s: %s keys", m, n[0])
	}
}

// The master of a subscription's channel dies and its replica takes over: the subscriber
// reports the gap ("") and receives what is published afterwards, with nothing done but
// waiting (go-redis alone would dial the dead master until its minute-long layout refresh).
func TestClusterSubscriberFollowsFailover(t *testing.T) {
	rc := testenv.StartRedisCluster(t)
	prefix := uniquePrefix()
	c := mustNew(t, Options{Addrs: rc.Addrs(), Cluster: true, KeyPrefix: prefix})
	ctx := context.Background()
	sub, err := c.Subscribe(ctx, "inv")
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := c.Publish(ctx, "inv", "before"); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := coordtest.Receive(t, sub); got != "before" {
		t.Fatalf("received %q, want before", got)
	}
	master, replica, err := rc.MasterOf(prefix + ":inv")
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Node(master).Kill(); err != nil {
		t.Fatal(err)
	}
	if err := rc.WaitOK(replica, time.Minute); err != nil {
		t.Fatal(err)
	}
	gap := false
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; ; n++ {
		// Published again until one arrives: a message sent before the subscriber is back
		// is lost, as the contract allows.
		_ = c.Publish(ctx, "inv", fmt.Sprintf("after-%d", n))
		select {
		case got := <-sub:
			if got == "" {
				gap = true
				continue
			}
			if !gap {
				t.Fatalf("received %q after the failover without the gap reported first", got)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing published after the failover of %s to %s arrived within 30 s (gap reported: %v)", master, replica, gap)
		}
	}
}
