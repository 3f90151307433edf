package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Issue 16's PostgreSQL scenarios.
const (
	// pgOutageKeys is the handful of keys under load through the restart, each its own user.
	pgOutageKeys = 4
	// pgRecoveryTarget is issue 16's figure for the time from PostgreSQL accepting
	// connections again to a node serving a key it has never seen: measured and logged per
	// node (a slower node's last probes and errors are logged too), not asserted.
	pgRecoveryTarget = 200 * time.Millisecond
	// pgProbeEvery paces the recovery probes: the resolution of the measurement.
	pgProbeEvery = 5 * time.Millisecond
)

// recoveryProbe is a one-event stream: its message_start marks the moment a node serves.
var recoveryProbe = shape{stream: true, events: 1}

// postgresRestartKnownKeys is issue 16's scenarios 2 and 3 for PostgreSQL. A handful of keys,
// each known to every node beforehand, are under steady load through Caddy and straight to
// every node while PostgreSQL is stopped for a few seconds and started again:
//
//   - every request of a known key is served, before, during and after the outage;
//   - once PostgreSQL is back, every answer is in the ledger exactly once and each balance
//     fell by exactly its charges;
//   - a key no node has seen is refused during the outage (the database 503), and served by
//     every node once PostgreSQL is back; the time from PostgreSQL accepting connections
//     again to each node serving it is measured and logged. "Accepting connections" is the
//     moment an independent probe (fresh connections 1 ms apart, each running SELECT 1)
//     first got its answer; "serving" is the moment the first event of a node's answer for
//     the new key reached the client. That request needed PostgreSQL (the key lookup and the
//     group's accounts were in no cache); the known keys never did. Beside each figure: when
//     the node's own pool got through again (its log), and the host's load average.
func (c *cluster) postgresRestartKnownKeys(t *testing.T) {
	nodes := c.liveNodes()
	tenants := c.newTenants(t, "pg-known", pgOutageKeys)
	// Never used before the outage: no node has it cached.
	fresh := c.newTenant(t, "pg-fresh", accountSpec{})
	c.conns.reset()

	// Every node learns every key; then each is under load, twice through Caddy.
	client := newClient()
	known := c.loadKnownKeys(t, client, nodes, tenants, 2)
	defer known.stop()

	time.Sleep(time.Second)
	down := time.Now()
	if err := c.pg.Stop(); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
	time.Sleep(outage / 2)
	// A key no node has seen cannot be checked while PostgreSQL is down.
	for _, n := range nodes {
		o := send(context.Background(), client, n.base(), fresh.key, quick, 0, nil)
		if o.status != 503 || o.errType != "overloaded_error" || o.requestID == "" {
			t.Errorf("%s, an unknown key while PostgreSQL is down: %s; want the node's database 503", n.name, o)
		}
	}
	time.Sleep(outage / 2)

	// The recovery probes: the fresh key against every node, from just before the start.
	answering := make(chan [2]time.Time, 1)
	go func() {
		began, ended := pgAnswers(c.pg.DSN(dbName), time.Now().Add(recoveryBound))
		answering <- [2]time.Time{began, ended}
	}()
	type recovery struct {
		node string
		// served is when the node's first answer for the fresh key began to stream
		// (message_start arrived): from then on it serves. The end of that answer waits
		// for its ledger row, which queues behind the rows of the outage.
		served time.Time
		probes []outcome
	}
	recoveries := make([]recovery, len(nodes))
	var probing sync.WaitGroup
	for i, n := range nodes {
		probing.Add(1)
		go func() {
			defer probing.Done()
			r := &recoveries[i]
			r.node = n.name
			deadline := time.Now().Add(recoveryBound)
			for time.Now().Before(deadline) {
				var began time.Time
				o := send(context.Background(), client, n.base(), fresh.key, recoveryProbe, 0, func() { began = time.Now() })
				r.probes = append(r.probes, o)
				if o.complete {
					r.served = began
					return
				}
				time.Sleep(pgProbeEvery)
			}
		}()
	}
	loadAverage := hostLoad()
	up := time.Now()
	if err := c.pg.Start(); err != nil {
		t.Fatalf("start PostgreSQL again: %v", err)
	}
	started := time.Now()
	answered := <-answering
	back := answered[1] // the first SELECT 1 answered: PostgreSQL accepts connections
	probing.Wait()
	if back.IsZero() {
		t.Fatalf("PostgreSQL did not answer within %s of its start", recoveryBound)
	}

	var lines []string
	var probes []outcome
	for i, r := range recoveries {
		probes = append(probes, r.probes...)
		if r.served.IsZero() {
			t.Errorf("%s does not serve a new key %s after PostgreSQL is back: %s", r.node, recoveryBound, r.probes[len(r.probes)-1])
			continue
		}
		took := r.served.Sub(back)
		lines = append(lines, fmt.Sprintf("%s %d ms (%s)", r.node, took.Milliseconds(), poolRecovery(nodes[i], down, back)))
		if took > pgRecoveryTarget {
			var last []string
			for _, o := range r.probes[max(0, len(r.probes)-3):] {
				last = append(last, fmt.Sprintf("%s–%s %s", o.start.Format(clock), o.end.Format(clock), o))
			}
			t.Logf("%s was slow to recover; its last probes:\n%s\nits errors since PostgreSQL answered:\n%s", r.node,
				strings.Join(last, "\n"), strings.Join(nodeErrorsSince(nodes[i], back, 5), "\n"))
		}
	}
	sort.Strings(lines)
	// The probe's own successful attempt shows what a new connection costs PostgreSQL right
	// after its start: the nodes' connections, opened at the same moment, pay the same.
	t.Logf("PostgreSQL stopped at %s, started at %s (pg start returned at %s); it accepted connections again at %s, "+
		"when the harness's first SELECT 1 was answered (that attempt, connection included, took %d ms); "+
		"from then to each node serving a new key (the first event of its answer; negative: the node's own connection won): %s; "+
		"load average %s",
		down.Format(clock), up.Format(clock), started.Format(clock), back.Format(clock), answered[1].Sub(answered[0]).Milliseconds(),
		strings.Join(lines, ", "), loadAverage)

	// Load continues a moment after the recovery, then the known keys must have been
	// served throughout.
	time.Sleep(time.Second)
	known.stop()
	during := 0
	for i, tn := range tenants {
		outs := known.outs[i]
		n := countDuring(outs, down, back)
		during += n
		t.Logf("%s: %d requests, %d of them started while PostgreSQL was down", tn.name, len(outs), n)
		requireComplete(t, outs)
		c.checkBilling(t, tn, append(outs, known.warm[i]...), true)
	}
	if during == 0 {
		t.Errorf("no request of a known key was sent while PostgreSQL was down")
	}
	c.checkBilling(t, fresh, probes, true)
	c.checkConnBound(t, len(nodes))
}

// nodeErrorsSince returns the last lines of the node's log at level ERROR since t.
func nodeErrorsSince(n *node, since time.Time, last int) []string {
	var out []string
	for _, line := range strings.Split(n.Output(), "\n") {
		var r struct {
			Time  time.Time `json:"time"`
			Level string    `json:"level"`
		}
		if json.Unmarshal([]byte(line), &r) != nil || r.Level != "ERROR" || r.Time.Before(since) {
			continue
		}
		out = append(out, line)
	}
	return out[max(0, len(out)-last):]
}

// poolRecovery describes, from n's log, when its pool got through to PostgreSQL again after
// the outage that began at down, relative to back: the line the pool logs when its first
// new connection is connected and warmed.
func poolRecovery(n *node, down, back time.Time) string {
	for _, line := range strings.Split(n.Output(), "\n") {
		var r struct {
			Time    time.Time     `json:"time"`
			Msg     string        `json:"msg"`
			Connect time.Duration `json:"connect"`
			Warm    time.Duration `json:"warm"`
		}
		if json.Unmarshal([]byte(line), &r) != nil || r.Msg != "database reachable again" || r.Time.Before(down) {
			continue
		}
		return fmt.Sprintf("its pool got through at %+d ms: connect %d ms, warm %d ms",
			r.Time.Sub(back).Milliseconds(), r.Connect.Milliseconds(), r.Warm.Milliseconds())
	}
	return "its pool logged no reconnection"
}

// hostLoad is the host's load average (1, 5, 15 minutes), which the recovery figures depend
// on; "unknown" where /proc/loadavg is missing.
func hostLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// countDuring counts the outcomes that started in [from, to).
func countDuring(outs []outcome, from, to time.Time) int {
	n := 0
	for _, o := range outs {
		if !o.start.Before(from) && o.start.Before(to) {
			n++
		}
	}
	return n
}

// pgAnswers polls PostgreSQL with fresh connections, one after the other a millisecond
// apart, each running SELECT 1, until one is answered, and returns when that attempt began and
// when its answer came: from then on PostgreSQL accepts connections. Zero times when deadline
// passes first.
func pgAnswers(dsn string, deadline time.Time) (began, ended time.Time) {
	for time.Now().Before(deadline) {
		began = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			var one int
			err = conn.QueryRow(ctx, "SELECT 1").Scan(&one)
			ended = time.Now()
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return began, ended
		}
		time.Sleep(time.Millisecond)
	}
	return time.Time{}, time.Time{}
}
