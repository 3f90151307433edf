package redis

import (
	"context"
	"crypto/tls"
	"net"
	"runtime"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// probeEvery is how often the pool's probe dial is tried again while Redis refuses it (see
// dialer).
const probeEvery = 20 * time.Millisecond

// probeFor bounds one probe dial.
const probeFor = 30 * time.Second

// keepAlive is go-redis's own TCP keep-alive policy: probe after 30 s idle, give up on the
// peer after 3 unanswered probes 5 s apart.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3}

// dialer opens every connection of the client. Once PoolSize dials have failed (in all, since
// the last reset), go-redis stops dialing: every call fails at once until a background probe
// (ConnPool.tryDial) connects, and that probe sleeps a whole second after each failure, which
// kept a node refusing for up to a second after Redis came back (issue 16). The dialer knows
// the probe's dial by its caller, and retries it every probeEvery until Redis accepts, so the
// pool reopens within probeEvery of Redis answering again. (It used to count failures the way
// go-redis does, but the counts drifted apart under load, and in a failover a node then
// refused for most of a second after the Sentinel named the new master.) Every other dial is
// tried once, within its deadline, so a request fails fast while Redis is down.
type dialer struct {
	timeout time.Duration
	tls     *tls.Config
	closed  <-chan struct{}

	// master, for Sentinel, names the current master: a probe that began before a failover
	// connects to the new one (go-redis only closes the probe's connection and reopens the
	// pool, whose next dial asks the Sentinels again).
	master    func(ctx context.Context) (string, error)
	sentinels []string
}

func newDialer(timeout time.Duration, cfg *tls.Config, closed <-chan struct{}) *dialer {
	return &dialer{timeout: timeout, tls: cfg, closed: closed}
}

func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if !probing() {
		return d.once(ctx, network, addr)
	}
	// go-redis bounds each probe by the dial timeout; this loop has its own bound.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeFor)
	defer cancel()
	for {
		if d.master != nil && !slices.Contains(d.sentinels, addr) {
			if a, err := d.master(ctx); err == nil {
				addr = a
			}
		}
		conn, err := d.once(ctx, network, addr)
		if err == nil {
			return conn, nil
		}
		select {
		case <-d.closed:
			return nil, err
		case <-ctx.Done():
			return nil, err
		case <-time.After(probeEvery):
		}
	}
}

// probing reports whether the dial was asked for by go-redis's background probe.
func probing() bool {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, "/internal/pool.(*ConnPool).tryDial") {
			return true
		}
		if !more {
			return false
		}
	}
}

// once makes one dial, bounded by the dial timeout.
func (d *dialer) once(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := &net.Dialer{Timeout: d.timeout, KeepAliveConfig: keepAlive}
	if d.tls == nil {
		return nd.DialContext(ctx, network, addr)
	}
	return (&tls.Dialer{NetDialer: nd, Config: d.tls}).DialContext(ctx, network, addr)
}

// askSentinels returns a function that asks the Sentinels, in turn, for the master's address.
func askSentinels(u *goredis.UniversalOptions, dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		var err error
		for _, s := range u.Addrs {
			sc := goredis.NewSentinelClient(&goredis.Options{Addr: s, Password: u.SentinelPassword, TLSConfig: u.TLSConfig,
				Dialer: dial, DialTimeout: u.DialTimeout, ReadTimeout: u.ReadTimeout, WriteTimeout: u.WriteTimeout,
				MaxRetries: -1, DisableIdentity: true,
				MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
			var addr []string
			addr, err = sc.GetMasterAddrByName(ctx, u.MasterName).Result()
			_ = sc.Close()
			if err == nil && len(addr) == 2 {
				return net.JoinHostPort(addr[0], addr[1]), nil
			}
		}
		return "", err
	}
}
