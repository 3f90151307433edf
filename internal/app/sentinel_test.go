package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/fluxcode/fluxcode/internal/testenv"
)

// TestClusterNodeThroughSentinel runs a cluster node that finds its Redis master through a
// real Sentinel (REDIS_SENTINEL_ADDRS, REDIS_MASTER_NAME, both passwords).
func TestClusterNodeThroughSentinel(t *testing.T) {
	const masterPassword, sentinelPassword = "master-Secret-pw", "sentinel-Secret-pw"
	master := testenv.StartRedis(t, testenv.WithPassword(masterPassword))
	sentinel := testenv.StartSentinel(t, testenv.SentinelOptions{Name: "fluxmaster", MasterAddr: master.Addr(),
		MasterPassword: masterPassword, Password: sentinelPassword})

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
