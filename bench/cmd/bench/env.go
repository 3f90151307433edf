package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fluxcode/fluxcode/bench/internal/load"
	"github.com/fluxcode/fluxcode/bench/internal/report"
	"github.com/fluxcode/fluxcode/internal/testenv"
)

// binaries are the programs the harness builds from this checkout.
type binaries struct {
	fluxcode, mock, loadgen, bareproxy string
}

// build compiles every program into dir with one go build (one link cache, two cores).
func build(ctx context.Context, root, dir string) (binaries, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+"/",
		"./cmd/fluxcode", "./cmd/mockupstream", "./bench/cmd/loadgen", "./bench/cmd/bareproxy")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return binaries{}, fmt.Errorf("go build: %w\n%s", err, out)
	}
	return binaries{
		fluxcode: filepath.Join(dir, "fluxcode"), mock: filepath.Join(dir, "mockupstream"),
		loadgen: filepath.Join(dir, "loadgen"), bareproxy: filepath.Join(dir, "bareproxy"),
	}, nil
}

// target is one system under test, with what the harness measures about it.
type target struct {
	name, desc string
	url        string            // base URL the load goes to
	keys       map[string]string // API key the load presents, by protocol (load.Protocols)
	self       []*child
	caddyPid   int
	pgPid      int // PostgreSQL postmaster, 0 when unused (its backends count too)
	pg         *pgCounter
	redisPid   int
	redis      *redisCounter
	redisAddr  string
	// settle is how long to wait after the load before the counters are read, so that
	// billing batched by the gateway lands in the cell that caused it.
	settle time.Duration
	// deployment is set for FluxCode targets.
	deployment *deployment
	// extra targets are measured in the rounds only (no memory figures).
	extra bool
}

func (t *target) selfPids() []int {
	out := make([]int, len(t.self))
	for i, c := range t.self {
		out[i] = c.pid()
	}
	return out
}

// deployment is one FluxCode installation: its nodes, their environment, its mock key.
type deployment struct {
	name        string
	env         []string // shared by every node (without SERVER_PORT, NODE_NAME, PPROF_ADDR)
	nodes       []*child
	urls        []string
	pprofAddrs  []string // each node's PPROF_ADDR: profiles come from the measured processes
	upstreamKey string
}

// lab is everything the harness started.
type lab struct {
	root, dir, logDir string
	bin               binaries
	mock, bare        *child
	mockURL           string
	pg                *testenv.Postgres
	fastStorage       bool              // also run SQLiteNormal and PGRedisFast
	fastPG            *testenv.Postgres // its PostgreSQL
	redis             []*testenv.Redis
	caddy             *testenv.Caddy
	targets           []*target
	deployments       map[string]*deployment
	closers           []func()
}

// target returns the target named name (nil when there is none).
func (l *lab) target(name string) *target {
	for _, t := range l.targets {
		if t.name == name {
			return t
		}
	}
	return nil
}

// close stops everything in reverse order of start.
func (l *lab) close() {
	for i := len(l.closers) - 1; i >= 0; i-- {
		l.closers[i]()
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startLab starts the mock, the bare proxy, PostgreSQL, two Redis servers, the FluxCode
// deployments and Caddy, provisions each deployment, and returns the targets in run order.
func startLab(ctx context.Context, root, dir string, bin binaries, fastStorage bool, logf func(string, ...any)) (*lab, error) {
	l := &lab{root: root, dir: dir, logDir: filepath.Join(dir, "logs"), bin: bin, deployments: map[string]*deployment{}}
	l.fastStorage = fastStorage
	if err := os.MkdirAll(l.logDir, 0o755); err != nil {
		return nil, err
	}
	if err := l.start(ctx, logf); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

func (l *lab) start(ctx context.Context, logf func(string, ...any)) error {
	// The mock upstream, as its own process. Its request log is off: it would cost the mock
	// time that no real provider spends.
	mockAddr, err := freeAddr()
	if err != nil {
		return err
	}
	l.mock, err = startChild("mockupstream", l.logDir, l.bin.mock,
		[]string{"-addr", mockAddr, "-log-size", "-1", "-record-per-key", "-1"}, nil)
	if err != nil {
		return err
	}
	l.closers = append(l.closers, l.mock.stop)
	l.mockURL = "http://" + mockAddr
	if err := l.mock.waitReady(testenv.HTTPReady(l.mockURL + "/api/hello")); err != nil {
		return err
	}
	l.targets = append(l.targets, &target{name: report.Mock, url: l.mockURL, keys: directKeys(),
		self: []*child{l.mock}, desc: "cmd/mockupstream, its own process: the upstream every other target forwards to"})

	bareAddr, err := freeAddr()
	if err != nil {
		return err
	}
	l.bare, err = startChild("bareproxy", l.logDir, l.bin.bareproxy, []string{"-addr", bareAddr, "-upstream", l.mockURL}, nil)
	if err != nil {
		return err
	}
	l.closers = append(l.closers, l.bare.stop)
	if err := l.bare.waitReady(testenv.HTTPReady("http://" + bareAddr + "/api/hello")); err != nil {
		return err
	}
	l.targets = append(l.targets, &target{name: report.Bare, url: "http://" + bareAddr, keys: directKeys(),
		self: []*child{l.bare}, desc: "bench/cmd/bareproxy: httputil.ReverseProxy (reads the body, flushes every write) → mock"})
	logf("mock and bare proxy up")

	// PostgreSQL with pg_stat_statements, and one Redis per cluster deployment, so that
	// each deployment's Redis counters are its own. Both run as an operator runs them:
	// PostgreSQL's durable defaults (every commit waits for its WAL flush) and Redis's
	// append-only file fsynced every second, as deploy/docker-compose.infra.yml does.
	l.pg, err = testenv.LaunchDurablePostgres("shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=top",
		"pg_stat_statements.max=5000")
	if err != nil {
		return err
	}
	l.closers = append(l.closers, l.pg.Close)
	if err := preparePostgres(ctx, l.pg, "fluxcode_one", "fluxcode_two"); err != nil {
		return err
	}
	for range 2 {
		r, err := testenv.LaunchRedis(testenv.WithOperatorPersistence())
		if err != nil {
			return err
		}
		l.closers = append(l.closers, r.Close)
		l.redis = append(l.redis, r)
	}
	if l.fastStorage {
		// The test suites' settings: fsync, synchronous_commit and full_page_writes off.
		l.fastPG, err = testenv.LaunchPostgres("shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=top",
			"pg_stat_statements.max=5000")
		if err != nil {
			return err
		}
		l.closers = append(l.closers, l.fastPG.Close)
		if err := preparePostgres(ctx, l.fastPG, "fluxcode_fast"); err != nil {
			return err
		}
		r, err := testenv.LaunchRedis()
		if err != nil {
			return err
		}
		l.closers = append(l.closers, r.Close)
		l.redis = append(l.redis, r)
	}
	logf("postgresql and redis up")

	common := []string{
		"SERVER_HOST=127.0.0.1", "ENCRYPTION_KEY=" + randomHex(32), "JWT_SECRET=" + randomHex(32),
		"ADMIN_EMAIL=" + adminEmail, "ADMIN_PASSWORD=" + adminPassword,
		// The access log is off (warn): a line per request on stdout would be measured too.
		"LOG_LEVEL=warn", "LOG_FORMAT=text",
		// The mock is on loopback, which the SSRF guard refuses unless the operator allows it.
		"UPSTREAM_ALLOWED_NETWORKS=127.0.0.0/8",
	}
	sqliteDir := filepath.Join(l.dir, "sqlite-data")
	if err := l.deploy(report.SQLite, "sk-bench-sqlite", 1, append(common, "DATA_DIR="+sqliteDir)); err != nil {
		return err
	}
	if l.fastStorage {
		if err := l.deploy(report.SQLiteNormal, "sk-bench-sqlite-normal", 1, append(common,
			"DATA_DIR="+filepath.Join(l.dir, "sqlite-normal-data"), "SQLITE_SYNCHRONOUS=normal")); err != nil {
			return err
		}
	}
	if err := l.deploy(report.PGRedis, "sk-bench-pg", 1, append(common, "DATA_DIR="+filepath.Join(l.dir, "pg-data"),
		"DATABASE_URL="+l.pg.DSN("fluxcode_one"), "REDIS_URL="+l.redis[0].URL())); err != nil {
		return err
	}
	if l.fastStorage {
		if err := l.deploy(report.PGRedisFast, "sk-bench-fast", 1, append(common, "DATA_DIR="+filepath.Join(l.dir, "fast-data"),
			"DATABASE_URL="+l.fastPG.DSN("fluxcode_fast"), "REDIS_URL="+l.redis[2].URL())); err != nil {
			return err
		}
	}
	if err := l.deploy(report.TwoNodes, "sk-bench-two", 2, append(common, "DATA_DIR="+filepath.Join(l.dir, "two-data"),
		"DATABASE_URL="+l.pg.DSN("fluxcode_two"), "REDIS_URL="+l.redis[1].URL(), "TRUSTED_PROXIES=127.0.0.1")); err != nil {
		return err
	}
	logf("fluxcode deployments up")

	// Caddy with the deployment's own Caddyfile, in front of the two nodes.
	caddyfile, err := os.ReadFile(filepath.Join(l.root, "deploy", "Caddyfile.multihost"))
	if err != nil {
		return err
	}
	caddyAddr, err := freeAddr()
	if err != nil {
		return err
	}
	two := l.deployments[report.TwoNodes]
	upstreams := "to " + strings.TrimPrefix(two.urls[0], "http://") + " " + strings.TrimPrefix(two.urls[1], "http://")
	l.caddy, err = testenv.LaunchCaddy(string(caddyfile), map[string]string{
		"CADDY_ADDR": caddyAddr, "CADDY_ADDRESS": "http://" + caddyAddr,
		"FLUXCODE_UPSTREAMS": upstreams, "CADDY_STICKY_COOKIE": "off",
	})
	if err != nil {
		return err
	}
	l.closers = append(l.closers, l.caddy.Close)
	if err := waitFor(testenv.HTTPReady("http://"+caddyAddr+"/health"), time.Minute); err != nil {
		return fmt.Errorf("caddy → fluxcode /health: %w", err)
	}

	pgPid := l.pg.Pid()
	for _, name := range l.deploymentNames() {
		d := l.deployments[name]
		keys, err := provision(ctx, d.urls[0], l.mockURL, d.upstreamKey)
		if err != nil {
			return fmt.Errorf("provision %s: %w", name, err)
		}
		t := &target{name: name, url: d.urls[0], keys: keys, self: d.nodes, settle: 300 * time.Millisecond, deployment: d}
		switch name {
		case report.SQLite:
			t.desc = "the fluxcode binary, single node: SQLite in DATA_DIR (SQLITE_SYNCHRONOUS=full, the default: the WAL synced at every ledger commit), in-process coordination → mock"
		case report.SQLiteNormal:
			t.extra = true
			t.desc = "extra, not judged: fluxcode-sqlite with SQLITE_SYNCHRONOUS=normal — SQLite syncs its WAL only at checkpoints, not at each ledger commit (a power loss may lose the last commits; a killed process loses nothing); the difference to fluxcode-sqlite is the commit's sync"
		case report.PGRedis:
			t.desc = fmt.Sprintf("the fluxcode binary, one node → PostgreSQL %s (own server, durable defaults: fsync, synchronous_commit on) + Redis (own server, appendonly, appendfsync everysec) → mock", "15")
			t.pgPid, t.redisPid, t.redisAddr = pgPid, l.redis[0].Pid(), l.redis[0].Addr()
			if t.pg, err = newPGCounter(ctx, l.pg.DSN("postgres"), "fluxcode_one"); err != nil {
				return err
			}
			if t.redis, err = newRedisCounter(ctx, l.redis[0].URL()); err != nil {
				return err
			}
		case report.PGRedisFast:
			t.extra = true
			t.desc = "extra, not judged: fluxcode-pg-redis on storage no operator runs — PostgreSQL with fsync, synchronous_commit and full_page_writes off, Redis without persistence (the test suites' settings); the difference to fluxcode-pg-redis is the durable commit's cost"
			t.pgPid, t.redisPid, t.redisAddr = l.fastPG.Pid(), l.redis[2].Pid(), l.redis[2].Addr()
			if t.pg, err = newPGCounter(ctx, l.fastPG.DSN("postgres"), "fluxcode_fast"); err != nil {
				return err
			}
			if t.redis, err = newRedisCounter(ctx, l.redis[2].URL()); err != nil {
				return err
			}
		case report.TwoNodes:
			t.url = "http://" + caddyAddr
			t.desc = "Caddy (deploy/Caddyfile.multihost, least_conn) → two fluxcode processes sharing one PostgreSQL database and one Redis → mock"
			t.caddyPid, t.pgPid, t.redisPid, t.redisAddr = l.caddy.Pid(), pgPid, l.redis[1].Pid(), l.redis[1].Addr()
			if t.pg, err = newPGCounter(ctx, l.pg.DSN("postgres"), "fluxcode_two"); err != nil {
				return err
			}
			if t.redis, err = newRedisCounter(ctx, l.redis[1].URL()); err != nil {
				return err
			}
		}
		if t.pg != nil {
			l.closers = append(l.closers, t.pg.close)
		}
		if t.redis != nil {
			l.closers = append(l.closers, t.redis.close)
		}
		l.targets = append(l.targets, t)
	}
	logf("provisioned through the admin API")
	return nil
}

// deploymentNames are the FluxCode deployments started, in run order.
func (l *lab) deploymentNames() []string {
	if l.fastStorage {
		return []string{report.SQLite, report.SQLiteNormal, report.PGRedis, report.PGRedisFast, report.TwoNodes}
	}
	return []string{report.SQLite, report.PGRedis, report.TwoNodes}
}

// preparePostgres creates the deployments' databases and the statement counter.
func preparePostgres(ctx context.Context, pg *testenv.Postgres, dbs ...string) error {
	for _, db := range dbs {
		if err := pg.CreateDB(db); err != nil {
			return err
		}
	}
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
	return err
}

// deploy starts n fluxcode nodes sharing env and waits until each answers /health. Every
// node also serves Go's profiler on a loopback port of its own (PPROF_ADDR), idle unless a
// profile is taken, so that profiles show exactly the processes the figures come from.
func (l *lab) deploy(name, upstreamKey string, n int, env []string) error {
	d := &deployment{name: name, env: env, upstreamKey: upstreamKey}
	for i := range n {
		nodeName := fmt.Sprintf("%s-%d", name, i+1)
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		pprofAddr, err := freeAddr()
		if err != nil {
			return err
		}
		port := addr[strings.LastIndexByte(addr, ':')+1:]
		node, err := startChild(nodeName, l.logDir, l.bin.fluxcode, nil,
			slices.Concat(env, []string{"SERVER_PORT=" + port, "NODE_NAME=" + nodeName, "PPROF_ADDR=" + pprofAddr}))
		if err != nil {
			return err
		}
		l.closers = append(l.closers, node.stop)
		url := "http://" + addr
		if err := node.waitReady(testenv.HTTPReady(url + "/health")); err != nil {
			return err
		}
		d.nodes = append(d.nodes, node)
		d.urls = append(d.urls, url)
		d.pprofAddrs = append(d.pprofAddrs, pprofAddr)
	}
	l.deployments[name] = d
	return nil
}

func waitFor(probe func() error, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		err := probe()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// directKeys are the keys of the load sent to the mock directly or through the bare proxy:
// the mock takes any key.
func directKeys() map[string]string {
	keys := map[string]string{}
	for _, p := range load.Protocols {
		keys[p] = "sk-bench-direct"
	}
	return keys
}
