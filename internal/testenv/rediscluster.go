package testenv

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// clusterNodeTimeout is cluster-node-timeout of the nodes StartRedisCluster starts: a
// master silent for this long is failed over to its replica.
const clusterNodeTimeout = 2 * time.Second

// clusterSize is how many servers StartRedisCluster starts: three masters, each with one
// replica.
const clusterSize = 6

// RedisCluster is a Redis Cluster of three masters and three replicas on 127.0.0.1, made
// with `redis-cli --cluster create` from Debian's redis-server and redis-tools.
type RedisCluster struct {
	nodes    []*Redis
	password string
}

// StartRedisCluster starts six cluster-enabled servers on free ports (each with its bus on
// a port of its own), joins them into a cluster whose 16384 slots are split evenly over
// three masters with one replica each, and waits until every node reports the cluster ok
// and every replica is in sync. Only WithPassword applies among opts. The servers are
// stopped and their files removed when t ends.
func StartRedisCluster(t testing.TB, opts ...RedisOption) *RedisCluster {
	t.Helper()
	path := RequireBinary(t, "redis-server", redisPackage)
	cli := RequireBinary(t, "redis-cli", "redis-tools")
	opts = append(slices.Clone(opts), func(c *redisConfig) { c.cluster, c.persist, c.replicaOf = true, false, "" })
	rc := &RedisCluster{}
	for range clusterSize {
		r, err := newRedis(path, opts)
		if err != nil {
			t.Fatalf("testenv: redis cluster node: %v", err)
		}
		t.Cleanup(r.close)
		rc.nodes = append(rc.nodes, r)
		rc.password = r.Password()
	}
	args := append([]string{"--cluster", "create"}, rc.Addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	cmd := exec.Command(cli, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if rc.password != "" {
		// REDISCLI_AUTH keeps the password off the command line.
		cmd.Env = append(cmd.Env, "REDISCLI_AUTH="+rc.password)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := rc.waitHealthy(processBound); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return rc
}

// Addrs are the host:port of every node, masters and replicas.
func (rc *RedisCluster) Addrs() []string {
	out := make([]string, len(rc.nodes))
	for i, r := range rc.nodes {
		out[i] = r.Addr()
	}
	return out
}

// Password is the password every node requires ("" for none).
func (rc *RedisCluster) Password() string { return rc.password }

// Node is the server listening on addr, nil when none of the cluster's does.
func (rc *RedisCluster) Node(addr string) *Redis {
	for _, r := range rc.nodes {
		if r.Addr() == addr {
			return r
		}
	}
	return nil
}

// Command sends one command to the node at addr and returns its reply as strings.
func (rc *RedisCluster) Command(addr string, args ...string) ([]string, error) {
	return SentinelCommand(addr, rc.password, args...)
}

// Masters lists the host:port of the masters that serve slots now, as the first node that
// answers sees them.
func (rc *RedisCluster) Masters() ([]string, error) {
	var lastErr error
	for _, r := range rc.nodes {
		out, err := rc.Command(r.Addr(), "CLUSTER", "NODES")
		if err != nil {
			lastErr = err
			continue
		}
		var masters []string
		for _, line := range strings.Split(strings.Join(out, "\n"), "\n") {
			// <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
			f := strings.Fields(line)
			if len(f) < 9 || !slices.Contains(strings.Split(f[2], ","), "master") || slices.Contains(strings.Split(f[2], ","), "fail") {
				continue
			}
			addr, _, _ := strings.Cut(f[1], "@")
			masters = append(masters, addr)
		}
		slices.Sort(masters)
		return masters, nil
	}
	return nil, fmt.Errorf("no cluster node answers CLUSTER NODES: %w", lastErr)
}

// waitHealthy waits until every node answers that the cluster is ok with every slot served
// and all six nodes known, and every replica's link to its master is up.
func (rc *RedisCluster) waitHealthy(bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		err := rc.healthy()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis cluster not ok after %s: %w", bound, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (rc *RedisCluster) healthy() error {
	for _, r := range rc.nodes {
		info, err := rc.Command(r.Addr(), "CLUSTER", "INFO")
		if err != nil {
			return fmt.Errorf("%s: %w", r.Addr(), err)
		}
		text := strings.Join(info, "\n")
		for _, want := range []string{"cluster_state:ok", "cluster_slots_ok:16384", fmt.Sprintf("cluster_known_nodes:%d", clusterSize)} {
			if !strings.Contains(text, want) {
				return fmt.Errorf("%s: CLUSTER INFO lacks %s", r.Addr(), want)
			}
		}
		repl, err := rc.Command(r.Addr(), "INFO", "replication")
		if err != nil {
			return fmt.Errorf("%s: %w", r.Addr(), err)
		}
		text = strings.Join(repl, "\n")
		if strings.Contains(text, "role:slave") && !strings.Contains(text, "master_link_status:up") {
			return fmt.Errorf("%s: the replica's link to its master is not up", r.Addr())
		}
	}
	return nil
}
