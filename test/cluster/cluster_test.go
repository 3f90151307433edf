package cluster

import (
	"context"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/fluxcode/fluxcode/internal/mockupstream"
	"github.com/fluxcode/fluxcode/internal/secret"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// The state host's names, as deploy/.env.infra.example has them.
const (
	dbUser = "fluxcode"
	dbName = "fluxcode"
)

// healthInterval is CADDY_HEALTH_INTERVAL for the test: Caddy probes every node's /health
// this often. The scenarios' windows after a failure are counted in these intervals.
const healthInterval = time.Second

// nodeIPs are the application hosts: three started together, a fourth added later.
var nodeIPs = []string{"127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"}

// cluster is the deployment of deploy/MULTI_HOST.md on one machine.
type cluster struct {
	t     *testing.T
	bin   string
	pg    *testenv.Postgres
	redis *testenv.Redis
	mock  *mockupstream.Server
	// secrets are the operator's values, identical on every node.
	secrets map[string]string
	nodes   []*node

	caddy *testenv.Caddy
	entry string // http://127.0.0.1:PORT, the site Caddy serves

	db    *pgxpool.Pool           // the harness's own view of the state (superuser, not a node's role)
	rdb   goredis.UniversalClient // the harness's own view of Redis (a *Client, or a *ClusterClient)
	conns *connSampler

	adminEmail string
	admin      string // an admin token, from a login through Caddy

	// startRedis, when set, starts the nodes' Redis instead of one persistent server, sets
	// rdb, and returns the REDIS_* variables that replace REDIS_HOST and REDIS_PORT.
	startRedis func(c *cluster) map[string]string
	redisEnv   map[string]string
	// nodeEnv, when set, adds variables to every node's environment (after the deploy's).
	nodeEnv func(c *cluster) map[string]string
	// startPostgres, when set, starts the state host's PostgreSQL instead of one server.
	startPostgres func(c *cluster) *testenv.Postgres
}

// startCluster starts the state host, the mock, three nodes at the same moment and Caddy in
// front of them, and waits until every node is healthy behind Caddy.
func startCluster(t *testing.T, bin string) *cluster {
	t.Helper()
	return startClusterWith(t, bin, nil)
}

// startClusterWith is startCluster with the nodes' Redis started by startRedis (see
// cluster.startRedis); nil for the usual one.
func startClusterWith(t *testing.T, bin string, startRedis func(c *cluster) map[string]string) *cluster {
	t.Helper()
	return startConfigured(&cluster{t: t, bin: bin, startRedis: startRedis})
}

// startConfigured starts the cluster c describes (see startCluster).
func startConfigured(c *cluster) *cluster {
	t := c.t
	t.Helper()
	c.secrets = map[string]string{
		"POSTGRES_PASSWORD": secret.NewMasterKey()[:32],
		"REDIS_PASSWORD":    secret.NewMasterKey()[:32],
		"ENCRYPTION_KEY":    secret.NewMasterKey(),
		"JWT_SECRET":        secret.NewMasterKey(),
		"ADMIN_PASSWORD":    secret.NewMasterKey()[:24],
	}
	c.startStateHost()
	c.mock = mockupstream.New(mockupstream.Options{Addr: "127.0.0.1:0", LogSize: -1, RecordPerKey: -1})
	if err := c.mock.Start(); err != nil {
		t.Fatalf("start the provider mock: %v", err)
	}
	t.Cleanup(func() { c.mock.Close() })

	checkNodeEnvFile(t, nodeEnvFile(t))
	for i := range 3 {
		c.nodes = append(c.nodes, c.newNode(i))
	}
	// Release all three at once (scenario 1).
	testenv.StartAll(t, c.nodes...)
	for _, n := range c.nodes {
		n.waitHealthy(t)
	}
	c.adminEmail = c.nodes[0].env["ADMIN_EMAIL"]

	site := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	c.caddy = startEntry(t, caddyEnvFor(site, c.nodes, false))
	c.entry = "http://" + site
	c.admin = testenv.Login(t, c.entry, c.adminEmail, c.secrets["ADMIN_PASSWORD"])
	return c
}

// startStateHost is server A: PostgreSQL with the fluxcode role and database, and Redis with
// a password and its append-only file.
func (c *cluster) startStateHost() {
	t := c.t
	if c.startPostgres != nil {
		c.pg = c.startPostgres(c)
	} else {
		c.pg = testenv.StartPostgres(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.pg.DSN("postgres"))
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{
		"CREATE ROLE " + dbUser + " LOGIN PASSWORD '" + c.secrets["POSTGRES_PASSWORD"] + "'",
		"CREATE DATABASE " + dbName + " OWNER " + dbUser,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("prepare the state host: %v", err)
		}
	}
	cfg, err := pgxpool.ParseConfig(c.pg.DSN(dbName) + "&application_name=cluster-harness")
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	if c.db, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
		t.Fatalf("harness pool: %v", err)
	}
	t.Cleanup(c.db.Close)
	c.conns = startConnSampler(t, c.db)

	if c.startRedis != nil {
		c.redisEnv = c.startRedis(c)
		return
	}
	c.redis = testenv.StartRedis(t, testenv.WithPassword(c.secrets["REDIS_PASSWORD"]), testenv.WithPersistence())
	c.rdb = goredis.NewClient(&goredis.Options{Addr: c.redis.Addr(), Password: c.redis.Password(),
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	t.Cleanup(func() { c.rdb.Close() })
}

// newNode prepares (without starting) node i on nodeIPs[i] with the rendered environment.
func (c *cluster) newNode(i int) *node {
	t := c.t
	ip := nodeIPs[i]
	port := testenv.FreePortOn(t, ip)
	name := fmt.Sprintf("node%d", i+1)
	dir := t.TempDir()
	fill := map[string]string{
		"NODE_BIND_HOST":  ip,
		"NODE_PORT":       strconv.Itoa(port),
		"NODE_NAME":       name,
		"TRUSTED_PROXIES": "127.0.0.1", // the entry host: Caddy connects from 127.0.0.1
		"DATABASE_HOST":   "127.0.0.1",
		"DATABASE_PORT":   strconv.Itoa(c.pg.Port()),
		"POSTGRES_USER":   dbUser,
		"POSTGRES_DB":     dbName,
	}
	if c.redisEnv == nil {
		_, redisPort, err := net.SplitHostPort(c.redis.Addr())
		if err != nil {
			t.Fatal(err)
		}
		fill["REDIS_HOST"], fill["REDIS_PORT"] = "127.0.0.1", redisPort
	}
	for k, v := range c.secrets {
		fill[k] = v
	}
	env := renderNodeEnv(t, fill, filepath.Join(dir, "data"))
	if c.redisEnv != nil {
		delete(env, "REDIS_HOST")
		delete(env, "REDIS_PORT")
		maps.Copy(env, c.redisEnv)
	}
	if c.nodeEnv != nil {
		maps.Copy(env, c.nodeEnv(c))
	}
	return newNode(t, c.bin, name, ip, port, dir, env)
}

// addNode starts one more node (the next of nodeIPs) and waits until it is healthy.
func (c *cluster) addNode() *node {
	n := c.newNode(len(c.nodes))
	testenv.StartAll(c.t, n)
	n.waitHealthy(c.t)
	c.nodes = append(c.nodes, n)
	return n
}

// liveNodes are the nodes whose process runs.
func (c *cluster) liveNodes() []*node {
	var out []*node
	for _, n := range c.nodes {
		if n.alive() {
			out = append(out, n)
		}
	}
	return out
}

// maxOpenConns is DATABASE_MAX_OPEN_CONNS as the nodes run with it.
func (c *cluster) maxOpenConns() int {
	v, err := strconv.Atoi(c.nodes[0].env["DATABASE_MAX_OPEN_CONNS"])
	if err != nil {
		c.t.Fatalf("DATABASE_MAX_OPEN_CONNS: %v", err)
	}
	return v
}

// connSampler counts the nodes' PostgreSQL sessions (pg_stat_activity rows of their role)
// every few milliseconds, for the whole test.
type connSampler struct {
	mu      sync.Mutex
	max     int // since the last reset
	samples int // since the last reset
	ever    int // the largest count of the whole test
}

func startConnSampler(t testing.TB, db *pgxpool.Pool) *connSampler {
	s := &connSampler{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var n int
			qctx, qcancel := context.WithTimeout(ctx, time.Second)
			err := db.QueryRow(qctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", dbUser).Scan(&n)
			qcancel()
			if err != nil {
				continue // PostgreSQL is being restarted
			}
			s.mu.Lock()
			s.max = max(s.max, n)
			s.ever = max(s.ever, n)
			s.samples++
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// reset starts a new measuring period.
func (s *connSampler) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.max, s.samples = 0, 0
}

// peak returns the largest count and the number of samples since the last reset.
func (s *connSampler) peak() (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max, s.samples
}

// everMax is the largest count of the whole test.
func (s *connSampler) everMax() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ever
}

// checkConnBound fails t when the nodes held more sessions than nodes × max open conns since
// the last reset (scenario 7).
func (c *cluster) checkConnBound(t testing.TB, nodes int) {
	t.Helper()
	peak, samples := c.conns.peak()
	bound := nodes * c.maxOpenConns()
	if samples == 0 {
		t.Errorf("pg_stat_activity was never sampled")
		return
	}
	if peak == 0 {
		t.Errorf("pg_stat_activity never showed a node session in %d samples", samples)
	}
	if peak > bound {
		t.Errorf("the nodes held %d PostgreSQL sessions; want ≤ %d nodes × DATABASE_MAX_OPEN_CONNS %d = %d",
			peak, nodes, c.maxOpenConns(), bound)
	}
	t.Logf("pg_stat_activity: at most %d node sessions in %d samples (bound %d)", peak, samples, bound)
}
