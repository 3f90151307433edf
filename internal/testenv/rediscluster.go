package testenv

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
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

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr, master string // master: the id of a replica's master, "-" for a master
	flags            []string
	slots            [][2]int // the ranges a master serves
}

// view is CLUSTER NODES as the first live node that answers sees it.
func (rc *RedisCluster) view() ([]clusterNode, error) {
	var lastErr error
	for _, r := range rc.nodes {
		if !r.proc.running() {
			continue
		}
		out, err := rc.Command(r.Addr(), "CLUSTER", "NODES")
		if err != nil {
			lastErr = err
			continue
		}
		var nodes []clusterNode
		for _, line := range strings.Split(strings.Join(out, "\n"), "\n") {
			// <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
			f := strings.Fields(line)
			if len(f) < 8 {
				continue
			}
			addr, _, _ := strings.Cut(f[1], "@")
			n := clusterNode{id: f[0], addr: addr, master: f[3], flags: strings.Split(f[2], ",")}
			for _, r := range f[8:] {
				lo, hi, ok := strings.Cut(r, "-")
				if !ok {
					hi = lo
				}
				a, err1 := strconv.Atoi(lo)
				b, err2 := strconv.Atoi(hi)
				if err1 == nil && err2 == nil {
					n.slots = append(n.slots, [2]int{a, b})
				}
			}
			nodes = append(nodes, n)
		}
		return nodes, nil
	}
	return nil, fmt.Errorf("no cluster node answers CLUSTER NODES: %w", lastErr)
}

// Masters lists the host:port of the masters that serve slots now, as the first node that
// answers sees them.
func (rc *RedisCluster) Masters() ([]string, error) {
	nodes, err := rc.view()
	if err != nil {
		return nil, err
	}
	var masters []string
	for _, n := range nodes {
		if slices.Contains(n.flags, "master") && !slices.Contains(n.flags, "fail") && len(n.slots) > 0 {
			masters = append(masters, n.addr)
		}
	}
	slices.Sort(masters)
	return masters, nil
}

// MasterOf returns the host:port of the master that serves key's slot, and of its replica.
func (rc *RedisCluster) MasterOf(key string) (master, replica string, err error) {
	nodes, err := rc.view()
	if err != nil {
		return "", "", err
	}
	out, err := rc.Command(nodes[0].addr, "CLUSTER", "KEYSLOT", key)
	if err != nil {
		return "", "", err
	}
	slot, err := strconv.Atoi(out[0])
	if err != nil {
		return "", "", fmt.Errorf("CLUSTER KEYSLOT %s: %w", key, err)
	}
	var id string
	for _, n := range nodes {
		for _, r := range n.slots {
			if slot >= r[0] && slot <= r[1] && !slices.Contains(n.flags, "fail") {
				id, master = n.id, n.addr
			}
		}
	}
	for _, n := range nodes {
		if id != "" && n.master == id {
			replica = n.addr
		}
	}
	if master == "" || replica == "" {
		return "", "", fmt.Errorf("slot %d of %s: master %q, replica %q", slot, key, master, replica)
	}
	return master, replica, nil
}

// WaitOK waits until the node at addr reports the cluster ok, every slot served.
func (rc *RedisCluster) WaitOK(addr string, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for {
		info, err := rc.Command(addr, "CLUSTER", "INFO")
		text := strings.Join(info, "\n")
		if err == nil && strings.Contains(text, "cluster_state:ok") && strings.Contains(text, "cluster_slots_ok:16384") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: the cluster is not ok after %s: %v %.200s", addr, bound, err, text)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
