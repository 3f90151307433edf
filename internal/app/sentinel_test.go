package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/fluxcode/fluxcode/internal/testenv"
)

// startSentinel runs `redis-server <conf> --sentinel` on a free loopback port, monitoring the
// master at masterAddr as name, and waits until it knows the master. It dies with the test
// binary and is killed when the test ends (testenv.StartProcess).
func startSentinel(t *testing.T, name, masterAddr, masterPassword, sentinelPassword string) string {
	t.Helper()
	bin := testenv.RequireBinary(t, "redis-server", "redis-server")
	dir := t.TempDir()
	port := testenv.FreePort(t)
	host, mport, _ := strings.Cut(masterAddr, ":")
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\n", port, dir, name, host, mport)
	if masterPassword != "" {
		conf += fmt.Sprintf("sentinel auth-pass %s %s\n", name, masterPassword)
	}
	if sentinelPassword != "" {
		conf += fmt.Sprintf("requirepass %s\n", sentinelPassword)
	}
	// Sentinel rewrites its configuration file, so it must be writable.
	confPath := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testenv.StartProcess(t, bin, testenv.ProcessOptions{Name: "sentinel", Args: []string{confPath, "--sentinel"}, InheritEnv: true})

	addr := "127.0.0.1:" + strconv.Itoa(port)
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: addr, Password: sentinelPassword, MaxRetries: -1})
	defer sc.Close()
	p.WaitReady(t, func() error {
		got, err := sc.GetMasterAddrByName(context.Background(), name).Result()
		if err == nil && strings.Join(got, ":") != masterAddr {
			err = fmt.Errorf("sentinel on %s names the master %v, want %s", addr, got, masterAddr)
		}
		return err
	})
	return addr
}

// TestClusterNodeThroughSentinel runs a cluster node that finds its Redis master through a
// real Sentinel (REDIS_SENTINEL_ADDRS, REDIS_MASTER_NAME, both passwords).
func TestClusterNodeThroughSentinel(t *testing.T) {
	const masterPassword, sentinelPassword = "master-Secret-pw", "sentinel-Secret-pw"
	master := testenv.StartRedis(t, testenv.WithPassword(masterPassword))
	sentinel := startSentinel(t, "fluxmaster", master.Addr(), masterPassword, sentinelPassword)

	env := map[string]string{
		"SERVER_HOST":             "127.0.0.1",
		"SERVER_PORT":             "0",
		"DATABASE_URL":            testenv.PostgresDSN(t),
		"REDIS_SENTINEL_ADDRS":    sentinel,
		"REDIS_MASTER_NAME":       "fluxmaster",
		"REDIS_SENTINEL_PASSWORD": sentinelPassword,
		"REDIS_PASSWORD":          masterPassword,
		"ENCRYPTION_KEY":          strings.Repeat("ab", 32),
		"ADMIN_PASSWORD":          "cluster-admin-pw",
		"DATA_DIR":                t.TempDir(),
	}
	m, out := startNode(t, env)
	code, h := getHealth(t, "http://"+m.Addr())
	if code != 200 || h.Components["redis"].Status != "ok" {
		t.Fatalf("/health = %d %+v", code, h)
	}
	// The coordinator really works on the master the Sentinel named.
	ctx := context.Background()
	if err := m.Coord().Publish(ctx, "sentinel-test", "x"); err != nil {
		t.Fatalf("publish through sentinel: %v", err)
	}
	mc := goredis.NewClient(&goredis.Options{Addr: master.Addr(), Password: masterPassword})
	defer mc.Close()
	if n, err := mc.Incr(ctx, "probe").Result(); err != nil || n != 1 {
		t.Fatalf("master: %d %v", n, err)
	}
	if _, err := m.Coord().Incr(ctx, "sentinel-counter", 5, time.Minute); err != nil {
		t.Fatalf("counter through sentinel: %v", err)
	}
	keys, err := mc.Keys(ctx, "*sentinel-counter*").Result()
	if err != nil || len(keys) != 1 {
		t.Errorf("the counter is not on the master: %v %v", keys, err)
	}
	for _, pw := range []string{masterPassword, sentinelPassword} {
		if strings.Contains(out.String(), pw) {
			t.Errorf("a Redis password appears in the logs")
		}
	}

}
