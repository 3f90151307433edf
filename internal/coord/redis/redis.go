// Package redis implements coord.Coordinator on Redis (standalone, Sentinel or Cluster), so
// that N FluxCode nodes share slots, leases, sticky bindings, counters and invalidations.
//
// Every multi-step operation is one Lua script, one round trip, timed by Redis's own clock
// (TIME), so node clocks never matter. Keys touched by one script share a hash tag, so the
// scripts also run on Redis Cluster. Every exchange with Redis is bounded by
// Options.OpTimeout, and the wait for a pooled connection by Options.PoolWait; a call that
// overruns fails with coord.ErrUnavailable, so a node with Redis down fails fast instead of
// hanging.
package redis

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// DefaultOpTimeout bounds one call when Options.OpTimeout is zero: far above a healthy
// loopback or LAN round trip, short enough that a request waiting on it still fails fast.
const DefaultOpTimeout = 500 * time.Millisecond

// DefaultPoolWait bounds the wait for a pooled connection when Options.PoolWait is zero.
// That wait is local queueing, not a sign that Redis is down: a burst of thousands of
// requests on a small machine queues for the pool far longer than any one round trip takes,
// and those requests must be served, not refused as if Redis had failed. A dead server still
// fails fast: refused dials and timed-out round trips empty the queue quickly.
const DefaultPoolWait = 3 * time.Second

// DefaultKeyPrefix starts every key and channel name when Options.KeyPrefix is empty.
const DefaultKeyPrefix = "fc"

// Options says where Redis is and how to use it. Zero values take the defaults named.
type Options struct {
	// URL is redis://[user:password@]host:port[/db] (rediss:// for TLS). Password and DB
	// below, when set, win over the URL's. Either URL or Addrs is required.
	URL string
	// Addrs lists host:port seeds: one for a standalone server, several for Cluster, the
	// Sentinels when MasterName is set.
	Addrs []string
	// MasterName selects Sentinel: the name of the monitored master.
	MasterName string
	// Cluster forces Cluster mode with a single seed address.
	Cluster bool

	Username string
	Password string
	DB       int
	// SentinelPassword authenticates to the Sentinels, when they require it.
	SentinelPassword string

	// PoolSize and MinIdleConns come from REDIS_POOL_SIZE / REDIS_MIN_IDLE_CONNS; zero keeps
	// go-redis's defaults (10 per CPU, none idle).
	PoolSize     int
	MinIdleConns int

	// KeyPrefix names every key and channel (default DefaultKeyPrefix), so deployments can
	// share a server. It must not contain braces: it is the Cluster hash tag of slot keys.
	KeyPrefix string
	// OpTimeout bounds each dial, write and read (default DefaultOpTimeout).
	OpTimeout time.Duration
	// PoolWait bounds the wait for a free connection (default DefaultPoolWait). A call,
	// retries included, ends within PoolWait + OpTimeout.
	PoolWait time.Duration
	// Counter, when set, counts the commands and round trips the coordinator sends.
	Counter *CommandCounter
}

// Coordinator is the Redis coordination backend. Create it with New.
type Coordinator struct {
	client goredis.UniversalClient
	// hot sends AcquireAccount and ReleaseSlots, pipelined under load (batch.go).
	hot    *batcher
	prefix string
	// sharded: the client is a Redis Cluster client, which publishes on sharded channels
	// (pubsub.go).
	sharded bool
	// opTimeout bounds each call: the pool wait plus one exchange.
	opTimeout time.Duration
	// probeIdle is how long a subscriber waits on a silent connection before it sends PING
	// (idleProbe; tests shorten it).
	probeIdle time.Duration

	// node names this coordinator among the members (epoch.go).
	node string

	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}
	// members are the nodes this one knows may hold slots (epoch.go).
	members []string
	// done is closed by Close: it ends the dialer's probes and keepEpoch.
	done chan struct{}
	// refreshed is when an epoch script last succeeded (UnixNano): it extended the epoch.
	refreshed atomic.Int64
	// takesSlots is set by the first AcquireAccount (keepEpoch).
	takesSlots atomic.Bool
}

var _ coord.Coordinator = (*Coordinator)(nil)

// New connects, joins the nodes and begins the epoch (coord.Slots) when there is none, so a
// wrong address or password is reported at start. It takes coord.MinRecoveryWindow longer
// than a round trip (startEpoch).
func New(ctx context.Context, opts Options) (*Coordinator, error) {
	uopts, err := universalOptions(opts)
	if err != nil {
		return nil, err
	}
	prefix := opts.KeyPrefix
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("redis coordinator: key prefix %q must not contain braces", prefix)
	}
	done := make(chan struct{})
	d := newDialer(uopts.DialTimeout, uopts.TLSConfig, done)
	if uopts.MasterName != "" {
		d.master, d.sentinels = askSentinels(uopts, d.once), uopts.Addrs
	}
	uopts.Dialer = d.dial
	c := &Coordinator{
		node:      rand.Text(),
		client:    goredis.NewUniversalClient(uopts),
		prefix:    prefix,
		opTimeout: uopts.PoolTimeout + uopts.ReadTimeout,
		probeIdle: idleProbe,
		subs:      make(map[*subscription]struct{}),
		done:      done,
	}
	if cc, ok := c.client.(*goredis.ClusterClient); ok {
		c.sharded = true
		cc.AddHook(topologyHook{cc})
	}
	c.hot = newBatcher(c.client, c.opTimeout)
	if opts.Counter != nil {
		c.client.AddHook(opts.Counter)
	}
	if err := c.startEpoch(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	go c.keepEpoch()
	return c, nil
}

// universalOptions merges URL and fields into go-redis options with our timeouts.
func universalOptions(opts Options) (*goredis.UniversalOptions, error) {
	u := &goredis.UniversalOptions{
		Addrs:         opts.Addrs,
		MasterName:    opts.MasterName,
		IsClusterMode: opts.Cluster,
	}
	if opts.URL != "" {
		parsed, err := goredis.ParseURL(opts.URL)
		if err != nil {
			// go-redis errors may quote the URL, password included: name the field only.
			return nil, errors.New("redis coordinator: URL is not a valid redis:// or rediss:// URL")
		}
		if len(u.Addrs) == 0 {
			u.Addrs = []string{parsed.Addr}
		}
		u.Username, u.Password, u.DB, u.TLSConfig = parsed.Username, parsed.Password, parsed.DB, parsed.TLSConfig
	}
	if len(u.Addrs) == 0 {
		return nil, errors.New("redis coordinator: neither URL nor Addrs is set")
	}
	if opts.Username != "" {
		u.Username = opts.Username
	}
	if opts.Password != "" {
		u.Password = opts.Password
	}
	u.SentinelPassword = opts.SentinelPassword
	if opts.DB != 0 {
		u.DB = opts.DB
	}
	if opts.PoolSize < 0 || opts.MinIdleConns < 0 {
		return nil, fmt.Errorf("redis coordinator: pool size %d and min idle %d must not be negative", opts.PoolSize, opts.MinIdleConns)
	}
	u.PoolSize, u.MinIdleConns = opts.PoolSize, opts.MinIdleConns

	timeout := opts.OpTimeout
	if timeout == 0 {
		timeout = DefaultOpTimeout
	}
	if timeout < 0 {
		return nil, fmt.Errorf("redis coordinator: op timeout %v must be positive", timeout)
	}
	wait := opts.PoolWait
	if wait == 0 {
		wait = DefaultPoolWait
	}
	if wait < 0 {
		return nil, fmt.Errorf("redis coordinator: pool wait %v must be positive", wait)
	}
	// Every socket wait is bounded by the call's own deadline (ContextTimeoutEnabled) and
	// by timeout, so a dead server costs one timeout per exchange; the queue for a
	// connection has its own, longer bound (see DefaultPoolWait).
	u.ContextTimeoutEnabled = true
	u.DialTimeout, u.ReadTimeout, u.WriteTimeout, u.PoolTimeout = timeout, timeout, timeout, wait
	// A refused dial means the server is down: say so at once instead of retrying it five
	// times. One command retry remains for the stale pooled connection a restart leaves.
	u.DialerRetries = 1
	u.MaxRetries = 1
	// CLIENT SETINFO and maintenance notifications cost a round trip per new connection and
	// are unknown to Redis 7.0 (Debian's); we need neither.
	u.DisableIdentity = true
	u.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return u, nil
}

// Ping answers nil when Redis answers within the op timeout.
func (c *Coordinator) Ping(ctx context.Context) error {
	ctx, cancel := c.op(ctx)
	defer cancel()
	if err := c.client.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// Close ends every subscription and closes the connections. It is safe to call twice.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	subs := c.subs
	c.subs = nil
	c.mu.Unlock()
	c.leave()
	for s := range subs {
		s.cancel()
	}
	if err := c.client.Close(); err != nil {
		return fmt.Errorf("close redis client: %w", err)
	}
	return nil
}

// op bounds one call.
func (c *Coordinator) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opTimeout)
}

// unavailable wraps a backend failure so callers can test it with errors.Is.
func unavailable(op string, err error) error {
	return fmt.Errorf("redis %s: %w: %w", op, coord.ErrUnavailable, err)
}

// Key layout, which decides where keys live on Redis Cluster (a script's keys must share
// one hash tag, the part of a key between its first braces):
//   - the admission state, {prefix}: every slot set (users', keys', accounts', wait
//     queues), every sticky binding, the epoch and the members. One AcquireAccount reads a
//     binding and checks a user's, a key's and any of the accounts' sets, which every user
//     shares, and one RefreshSlots re-registers everything a node holds with the epoch that
//     tells whether it must: no split of these keys keeps both one atomic script, so they
//     stay on one shard, the epoch with them (a failover of that shard is seen as a loss of
//     the very keys it lost, and nothing else can lose them);
//   - rate windows, {prefix:rate:<scope>}: one TakeRate checks the windows of one user and
//     the user's key, so users spread over the shards;
//   - a lease and its fence, {prefix:lease:<name>}; counters, one key each, spread by name;
//   - invalidation channels are sharded channels on Cluster (pubsub.go).
func (c *Coordinator) slotKey(key string) string   { return "{" + c.prefix + "}:slot:" + key }
func (c *Coordinator) leaseKey(name string) string { return "{" + c.prefix + ":lease:" + name + "}" }
func (c *Coordinator) stickyKey(key string) string { return "{" + c.prefix + "}:sticky:" + key }
func (c *Coordinator) epochKey() string            { return "{" + c.prefix + "}:epoch:v2" }
func (c *Coordinator) membersKey() string          { return "{" + c.prefix + "}:nodes" }
func (c *Coordinator) counterKey(key string) string {
	return c.prefix + ":counter:" + key
}
func (c *Coordinator) channelName(ch string) string { return c.prefix + ":" + ch }

// millis turns a TTL into whole milliseconds, rounding up so that a positive TTL never
// becomes 0 (which Redis would refuse or treat as "expire now").
func millis(what string, ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("%s: ttl must be positive, got %v", what, ttl)
	}
	return int64((ttl + time.Millisecond - 1) / time.Millisecond), nil
}
