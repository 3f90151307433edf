// Package e2e shows issue 3's must-shows end to end: the official Anthropic Go SDK talks to
// real gateway nodes, which relay to the mock upstream and bill into a real store; the
// cross-node tests run two nodes (and a separate node process) on one PostgreSQL and one
// Redis started by testenv.
package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/fluxcode/fluxcode/internal/coord/redis"
	"github.com/fluxcode/fluxcode/internal/gateway"
	"github.com/fluxcode/fluxcode/internal/gateway/gatewaytest"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/store"
	"github.com/fluxcode/fluxcode/internal/store/sqlstore"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// config is the gateway configuration of these tests: defaults, with charged balances
// announced fast.
func config() gateway.Config {
	cfg := gateway.Default()
	cfg.BillNotifyInterval = 20 * time.Millisecond
	return cfg
}

// cluster is gateway nodes on shared durable state and coordination, relaying to one mock
// upstream through a tap that records what the mock sent.
type cluster struct {
	*gatewaytest.Deps // node 0's: seed through Store, watch slots through Coord
	nodes             []*gatewaytest.Node
	tap               *gatewaytest.Tap
	clock             *gatewaytest.Clock
	// For clusters on PostgreSQL and Redis: where they are.
	dsn, redisURL, master string
	// nodeEnv is added to the environment of node processes (startNodeProcess).
	nodeEnv map[string]string
}

// single starts one node on SQLite and the in-process coordinator.
func single(t *testing.T, cfg gateway.Config) *cluster { return singleWith(t, cfg, nil) }

// singleWith is single serving the providers given (nil: Anthropic alone).
func singleWith(t *testing.T, cfg gateway.Config, provs []provider.Provider) *cluster {
	t.Helper()
	d := gatewaytest.NewDeps(t, gatewaytest.Deps{Providers: provs})
	c := &cluster{Deps: d, tap: gatewaytest.NewTap(t, d.Mock), clock: &gatewaytest.Clock{}}
	c.nodes = append(c.nodes, gatewaytest.Start(t, d, cfg, "node-1", c.clock.Now))
	return c
}

// shared starts n nodes, each with its own PostgreSQL pool and Redis client, on one
// PostgreSQL database and one Redis server.
func shared(t *testing.T, n int, cfg gateway.Config) *cluster { return sharedWith(t, n, cfg, nil) }

// sharedWith is shared serving the providers given (nil: Anthropic alone).
func sharedWith(t *testing.T, n int, cfg gateway.Config, provs []provider.Provider) *cluster {
	t.Helper()
	master, keys := masterKey(t)
	dsn := testenv.PostgresDSN(t)
	rds := testenv.StartRedis(t)
	mock := gatewaytest.StartMock(t)
	c := &cluster{tap: gatewaytest.NewTap(t, mock), clock: &gatewaytest.Clock{}, dsn: dsn, redisURL: rds.URL(), master: master}
	for i := range n {
		st, err := sqlstore.Open(context.Background(), sqlstore.Config{DSN: dsn, Keys: keys, Logger: gatewaytest.Logger()})
		if err != nil {
			t.Fatalf("open postgres store: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		co, err := redis.New(context.Background(), redis.Options{URL: rds.URL()})
		if err != nil {
			t.Fatalf("connect redis: %v", err)
		}
		t.Cleanup(func() { co.Close() })
		d := gatewaytest.NewDeps(t, gatewaytest.Deps{Store: st, Coord: co, Keys: keys, Mock: mock, Providers: provs})
		if i == 0 {
			c.Deps = d
		}
		c.nodes = append(c.nodes, gatewaytest.Start(t, d, cfg, "node-"+string(rune('1'+i)), c.clock.Now))
	}
	return c
}

// masterKey returns a fresh master key (hex, for a node process's ENCRYPTION_KEY) and the
// keys derived from it.
func masterKey(t *testing.T) (string, *secret.Keys) {
	t.Helper()
	master := secret.NewMasterKey()
	mk, err := secret.ParseMasterKey(master)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secret.NewKeys(mk)
	if err != nil {
		t.Fatal(err)
	}
	return master, keys
}

// onBothShapes runs check on one node (SQLite, in-process coordination) and on two nodes
// sharing PostgreSQL and Redis.
func onBothShapes(t *testing.T, check func(t *testing.T, c *cluster)) {
	t.Run("OneNodeSQLite", func(t *testing.T) { check(t, single(t, config())) })
	t.Run("TwoNodesPostgresRedis", func(t *testing.T) { check(t, shared(t, 2, config())) })
}

// tenant creates a user with a key in a new group (or the given one).
func (c *cluster) tenant(t *testing.T, o gatewaytest.TenantOptions) *gatewaytest.Tenant {
	t.Helper()
	return gatewaytest.NewTenant(t, c.Deps, o)
}

// account creates an API-key account in the groups whose upstream key is key, reached
// through the tap.
func (c *cluster) account(t *testing.T, key string, groups []int64, mutate func(*store.Account)) *store.Account {
	t.Helper()
	return gatewaytest.NewAccount(t, c.Deps, key, groups, func(a *store.Account) {
		a.BaseURL = c.tap.URL
		if mutate != nil {
			mutate(a)
		}
	})
}

// sdk is the official SDK pointed at a node, with retries off so that every answer reaches
// the test as it was.
func sdk(n *gatewaytest.Node, key string, opts ...option.RequestOption) anthropic.Client {
	base := []option.RequestOption{option.WithBaseURL(n.URL + "/"), option.WithAPIKey(key), option.WithMaxRetries(0)}
	return anthropic.NewClient(append(base, opts...)...)
}

// params is a small request of conversation conv (each conversation sticks on its own).
func params(conv string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     "claude-sonnet-5-5",
		MaxTokens: 512,
		System:    []anthropic.TextBlockParam{{Text: "You are terse."}},
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(conv))},
	}
}

// rows waits until the ledger holds want rows matching f (billing is batched) and returns
// them all.
func rows(t *testing.T, st store.Store, f store.UsageFilter, want int) []store.Usage {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, n, err := st.ListUsage(context.Background(), f, store.Page{Limit: 1})
		if err != nil {
			// Right after a database restart the store may need a moment to reconnect.
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if n >= want || time.Now().After(deadline) {
			if n != want {
				t.Fatalf("ledger has %d rows, want %d", n, want)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var out []store.Usage
	for off := 0; ; off += 200 {
		page, _, err := st.ListUsage(context.Background(), f, store.Page{Offset: off, Limit: 200})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if len(page) < 200 {
			return out
		}
	}
}

// sseEvent is one event as a client sees it.
type sseEvent struct {
	Name string
	Data json.RawMessage
}

// recordBody is SDK middleware that keeps a copy of every response body the client reads.
func recordBody(dst *[]byte) option.Middleware {
	return func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		resp, err := next(r)
		if err == nil {
			resp.Body = &teeBody{ReadCloser: resp.Body, dst: dst}
		}
		return resp, err
	}
}
