package cluster

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fluxcode/fluxcode/internal/testenv"
)

// pgFailoverKeys is the handful of keys under load through the failover, each its own user.
const pgFailoverKeys = 3

// TestClusterPostgresFailover (issue 15, must-show 6): the state host runs a PostgreSQL
// primary with a synchronous streaming standby, and every node's DATABASE_URL names both
// hosts with target_session_attrs=read-write. Under steady load the primary is killed
// (SIGKILL, as a crash) and, a few seconds later, the standby promoted:
//
//   - while no server accepts writes, a key no node has seen is refused at once with the
//     documented database error (503 overloaded_error, x-should-retry: true), answered
//     before the promotion, not held until a database comes back; every other answer is
//     complete or that same error;
//   - after the promotion every node serves the new key again by itself (no restart, no
//     configuration change);
//   - every completed answer, before, during and after the switch, is in the ledger of the
//     promoted server exactly once, and each balance fell by exactly its charges.
func TestClusterPostgresFailover(t *testing.T) {
	var pair *testenv.PostgresPair
	c := startConfigured(&cluster{t: t, bin: buildFluxcode(t),
		startPostgres: func(c *cluster) *testenv.Postgres {
			pair = testenv.StartPostgresPair(t)
			return pair.Primary
		},
		// The URL replaces the deploy's DATABASE_HOST (empty is unset; both set is refused).
		nodeEnv: func(c *cluster) map[string]string {
			return map[string]string{"DATABASE_HOST": "", "DATABASE_URL": fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable&target_session_attrs=read-write",
				dbUser, c.secrets["POSTGRES_PASSWORD"], pair.Hosts(), dbName)}
		},
	})
	// The harness reads the ledger through the same kind of URL, so it follows the failover.
	cfg, err := pgxpool.ParseConfig(pair.DSN(dbName) + "&application_name=cluster-harness")
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	if c.db, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.db.Close)

	nodes := c.liveNodes()
	tenants := c.newTenants(t, "pg-failover", pgFailoverKeys)
	fresh := c.newTenant(t, "pg-failover-fresh", accountSpec{}) // used first during the switch
	client := newClient()
	known := c.loadKnownKeys(t, client, nodes, tenants, 1)
	defer known.stop()

	time.Sleep(time.Second)
	down := time.Now()
	if err := pair.Primary.Kill(); err != nil {
		t.Fatalf("kill the primary: %v", err)
	}
	time.Sleep(outage / 2)
	// No server accepts writes: a key no node has cached cannot be checked.
	var switching []outcome
	for _, n := range nodes {
		switching = append(switching, send(context.Background(), client, n.base(), fresh.key, quick, 0, nil))
	}
	time.Sleep(outage / 2)
	promoting := time.Now()
	if err := pair.Promote(); err != nil {
		t.Fatalf("promote the standby: %v", err)
	}
	promoted := time.Now()
	for i, o := range switching {
		if o.status != http.StatusServiceUnavailable || o.errType != "overloaded_error" || o.retry != "true" || o.requestID == "" {
			t.Errorf("%s, a new key while no database accepts writes: %s (x-should-retry %q); want the node's retryable database 503",
				nodes[i].name, o, o.retry)
		}
		if !o.end.Before(promoting) {
			t.Errorf("%s held a new key's request until the promotion (%s–%s) instead of failing fast", nodes[i].name,
				o.start.Format(clock), o.end.Format(clock))
		}
	}

	// Every node serves the new key again by itself.
	var probes []outcome
	for _, n := range nodes {
		deadline := time.Now().Add(recoveryBound)
		for {
			o := send(context.Background(), client, n.base(), fresh.key, quick, 0, nil)
			probes = append(probes, o)
			if o.complete {
				t.Logf("%s serves a new key %s after the promotion finished", n.name, o.end.Sub(promoted).Round(time.Millisecond))
				break
			}
			c.checkClearError(t, o)
			if time.Now().After(deadline) {
				t.Fatalf("%s does not serve a new key %s after the promotion: %s\n%s", n.name, recoveryBound, o, c.pg.LogTail())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	time.Sleep(time.Second)
	known.stop()
	for i, tn := range tenants {
		outs := known.outs[i]
		refused := 0
		for _, o := range outs {
			switch {
			case o.complete:
			case o.status == http.StatusServiceUnavailable && o.errType == "overloaded_error" && o.retry == "true":
				refused++
			default:
				t.Errorf("%s under load: %s; want a complete answer or the retryable 503", tn.name, o)
			}
		}
		t.Logf("%s: %d requests, %d started during the switch, %d refused with the retryable 503",
			tn.name, len(outs), countDuring(outs, down, promoted), refused)
		c.checkBilling(t, tn, append(outs, known.warm[i]...), true)
	}
	c.checkBilling(t, fresh, append(switching, probes...), true)
}
