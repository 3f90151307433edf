package api_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/coord/memory"
	coordredis "github.com/fluxcode/fluxcode/internal/coord/redis"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// acrossNodes runs test with the coordinators of two nodes: two clients of one real Redis
// (the cluster shape), then the single node's in-process coordinator shared by both.
func acrossNodes(t *testing.T, test func(t *testing.T, c1, c2 coord.Coordinator)) {
	t.Run("Redis", func(t *testing.T) {
		nodeCoord := redisNodes(t)
		test(t, nodeCoord(), nodeCoord())
	})
	t.Run("InProcess", func(t *testing.T) {
		shared := memory.New()
		t.Cleanup(func() { _ = shared.Close() })
		test(t, shared, shared)
	})
}

// redisNodes starts a real Redis and returns a maker of node coordinators: each call is one
// more node's client of it.
func redisNodes(t *testing.T) func() coord.Coordinator {
	r := testenv.StartRedis(t)
	prefix := fmt.Sprintf("api-test-%d", time.Now().UnixNano())
	return func() coord.Coordinator {
		c, err := coordredis.New(context.Background(), coordredis.Options{URL: r.URL(), KeyPrefix: prefix})
		if err != nil {
			t.Fatalf("redis coordinator: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
}
