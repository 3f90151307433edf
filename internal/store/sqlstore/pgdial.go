package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// How a node's pool finds PostgreSQL again after an outage (docs/architecture.md, "Outages").
const (
	// reconnectEvery paces the reconnection attempts while PostgreSQL is unreachable: an
	// attempt starts within this long of the server accepting connections again.
	reconnectEvery = 20 * time.Millisecond
	// reconnectAttempts bounds the attempts in flight. A server that is starting up refuses
	// only after it has started a backend for the attempt (~100 ms on a busy host), so
	// attempts overlap to catch the first moment it accepts, but only a few per node.
	reconnectAttempts = 3
	// reconnectTimeout bounds one attempt against a server that does not answer at all.
	reconnectTimeout = 2 * time.Second
	// maxDials bounds one node's simultaneous connection attempts while PostgreSQL answers.
	maxDials = 4
	// rampConns is the pool's size right after an outage; it doubles every rampStep up to
	// the configured size. Every request of the node wants the database at that moment, and
	// a new backend's first statements cost tens of milliseconds (its catalog caches are
	// empty) against a few for a warm one: requests queue briefly for a few warm
	// connections instead of each starting a cold one.
	rampConns = 3
	rampStep  = 100 * time.Millisecond
	// parkedFor is how long a warmed connection waits to be taken before it is closed.
	parkedFor = time.Second
	// genKey marks a connection with the generation it was last known good in (pgconn
	// CustomData).
	genKey = "fluxcode.gen"
)

// pgDialer is the pool's connector on PostgreSQL. While the server answers, it dials like
// pgx does, at most maxDials at a time. Once a dial finds the server unreachable (refused,
// starting up, shutting down, timed out), the pool stops dialing: requests that need a new
// connection fail at once with that error, and one loop per node tries again every
// reconnectEvery. Once one gets through, rampConns connections prepare and run the request
// path's hot statements (warm) and wait for the next requests (parked); the first one warmed
// ends the outage, with the pool's size ramped up from rampConns. Connections pooled before the outage, or
// before any query found its connection dead, are pinged before their next use (gen), so a
// restart costs one failed query per node, not one per pooled connection.
type pgDialer struct {
	base driver.Connector
	warm func(context.Context, *pgx.Conn) error
	log  *slog.Logger

	db               *sql.DB
	maxOpen, maxIdle int

	dials chan struct{} // a slot per dial in flight (maxDials)

	ctx    context.Context // ends at Close: stops the reconnection loop and its attempts
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// gen grows when the server was lost (an outage began, or a query found its connection
	// dead): a pooled connection opened in an earlier generation is pinged before reuse.
	gen atomic.Uint64

	mu      sync.Mutex
	down    bool // unreachable: requests do not dial, the loop does
	warming bool // an attempt got through and is warming its connection
	// recovering: a warmed connection is ending the outage (resizing the pool).
	recovering bool
	since      time.Time // when the outage began
	lastErr    error     // why the server is unreachable
	parked     []parkedConn
	warmingUp  int // connections of a reconnection being opened and warmed beside the first
	// woken is closed (and replaced) when a connection is parked or a warming one gave up:
	// requests waiting for one look again.
	woken     chan struct{}
	reconnect int // reconnection attempts in flight
	outages   int // outages so far: a ramp stops when another outage begins
}

type parkedConn struct {
	c  driver.Conn
	at time.Time
}

var (
	_ driver.Connector = (*pgDialer)(nil)
	_ io.Closer        = (*pgDialer)(nil) // sql.DB.Close calls it
)

// openPgPool opens the database/sql pool on pc through a pgDialer.
func openPgPool(pc *pgx.ConnConfig, maxOpen, maxIdle int, warm func(context.Context, *pgx.Conn) error, log *slog.Logger) *sql.DB {
	p := &pgDialer{warm: warm, log: log, maxOpen: maxOpen, maxIdle: maxIdle, dials: make(chan struct{}, maxDials),
		woken: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	cfg := *pc
	cfg.Tracer = deadConnTracer{next: pc.Tracer, gen: &p.gen}
	p.base = stdlib.GetConnector(cfg,
		stdlib.OptionShouldPing(p.shouldPing),
		stdlib.OptionResetSession(p.resetSession))
	p.db = sql.OpenDB(p)
	p.db.SetMaxOpenConns(maxOpen)
	p.db.SetMaxIdleConns(maxIdle)
	return p.db
}

// Connect hands out a parked connection, or waits for one being warmed, or dials; while the
// server is unreachable it fails at once.
func (p *pgDialer) Connect(ctx context.Context) (driver.Conn, error) {
	for {
		p.mu.Lock()
		if c := p.takeParked(); c != nil {
			p.mu.Unlock()
			return c, nil
		}
		if p.down {
			err := p.lastErr
			p.mu.Unlock()
			return nil, fmt.Errorf("postgres unreachable, reconnecting: %w", err)
		}
		waiting, woken := p.warmingUp > 0, p.woken
		p.mu.Unlock()
		if !waiting {
			break
		}
		select {
		case <-woken:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	select {
	case p.dials <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c, err := p.base.Connect(ctx)
	<-p.dials
	if err != nil {
		if ctx.Err() == nil && unreachable(err) {
			p.lost(err)
		}
		return nil, err
	}
	markGen(c, p.gen.Load())
	return c, nil
}

// Driver implements driver.Connector.
func (p *pgDialer) Driver() driver.Driver { return p.base.Driver() }

// Close stops the reconnection loop and closes parked connections.
func (p *pgDialer) Close() error {
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.parked {
		pc.c.Close()
	}
	p.parked = nil
	return nil
}

// takeParked pops the newest parked connection, closing those parked too long. p.mu is held.
func (p *pgDialer) takeParked() driver.Conn {
	for len(p.parked) > 0 {
		pc := p.parked[len(p.parked)-1]
		p.parked = p.parked[:len(p.parked)-1]
		if time.Since(pc.at) < parkedFor {
			return pc.c
		}
		pc.c.Close()
	}
	return nil
}

// lost starts an outage, and the loop that ends it, unless one is on. The idle connections
// most likely died with the server: they are closed rather than kept (and counted) until a
// request tries each.
func (p *pgDialer) lost(err error) {
	p.mu.Lock()
	if p.down || p.ctx.Err() != nil {
		p.lastErr = err
		p.mu.Unlock()
		return
	}
	p.down, p.since, p.lastErr = true, time.Now(), err
	p.outages++
	p.gen.Add(1)
	p.log.Warn("database unreachable, reconnecting", "err", err, "every", reconnectEvery)
	p.wg.Add(1)
	go p.reconnectLoop()
	p.mu.Unlock()
	p.db.SetMaxIdleConns(-1)
}

// reconnectLoop starts an attempt every reconnectEvery (at most reconnectAttempts in
// flight) until one gets through.
func (p *pgDialer) reconnectLoop() {
	defer p.wg.Done()
	tick := time.NewTicker(reconnectEvery)
	defer tick.Stop()
	for {
		p.mu.Lock()
		done := !p.down
		if !done && !p.warming && p.reconnect < reconnectAttempts {
			p.reconnect++
			p.wg.Add(1)
			go p.attempt()
		}
		p.mu.Unlock()
		if done {
			return
		}
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// attempt dials once. When the first connection gets through, rampConns-1 more are opened
// beside it (warmBeside), and requests that find no parked connection wait for those rather
// than start cold ones; no attempt starts meanwhile. The first of them warmed ends the
// outage. Attempts already in flight that get through are warmed and parked too.
func (p *pgDialer) attempt() {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		p.reconnect--
		p.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(p.ctx, reconnectTimeout)
	defer cancel()
	began := time.Now()
	c, err := p.base.Connect(ctx)
	p.mu.Lock()
	if err != nil {
		if p.down {
			p.lastErr = err
		}
		p.mu.Unlock()
		return
	}
	first := p.down && !p.warming
	beside := min(rampConns, p.maxOpen) - 1
	if first {
		p.warming = true
		p.warmingUp += beside
	}
	p.mu.Unlock()
	if first {
		for range beside {
			p.wg.Add(1)
			go p.warmBeside()
		}
	}
	if err := p.warmAndPark(ctx, c, began); err != nil && first {
		// Lost again while warming: unless a connection beside it got through, the next
		// attempt will tell.
		p.mu.Lock()
		p.warming, p.lastErr = false, err
		p.mu.Unlock()
	}
}

// warmBeside opens and warms one more connection beside the first of a reconnection.
func (p *pgDialer) warmBeside() {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(p.ctx, reconnectTimeout)
	defer cancel()
	began := time.Now()
	if c, err := p.base.Connect(ctx); err == nil {
		p.warmAndPark(ctx, c, began)
	}
	p.mu.Lock()
	p.warmingUp--
	p.wake()
	p.mu.Unlock()
}

// wake lets the requests waiting for a parked connection look again. p.mu is held.
func (p *pgDialer) wake() {
	close(p.woken)
	p.woken = make(chan struct{})
}

// warmAndPark warms c (dialed from began) and parks it while the parked and open connections
// fit in the ramp's first size, else closes it; the first one warmed ends an outage. An error
// means the connection died meanwhile.
func (p *pgDialer) warmAndPark(ctx context.Context, c driver.Conn, began time.Time) error {
	connected := time.Now()
	markGen(c, p.gen.Load())
	pc := c.(*stdlib.Conn).Conn()
	if err := p.warm(ctx, pc); err != nil {
		if pc.IsClosed() {
			c.Close()
			return err
		}
		p.log.Warn("database reachable again, but preparing the hot statements failed", "err", err)
	}
	warmed := time.Now()
	p.recovered(connected.Sub(began), warmed.Sub(connected))
	open := p.db.Stats().OpenConnections
	p.mu.Lock()
	if p.ctx.Err() == nil && open+len(p.parked) < min(rampConns, p.maxOpen) {
		p.parked = append(p.parked, parkedConn{c: c, at: warmed})
		p.wake()
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
	return nil
}

// recovered ends an outage (once): the pool, shrunk to rampConns, grows back by doubling
// every rampStep unless another outage begins (and so do the idle connections it keeps, none
// during the outage).
func (p *pgDialer) recovered(connect, warm time.Duration) {
	p.mu.Lock()
	if !p.down || p.recovering {
		p.mu.Unlock()
		return
	}
	p.recovering = true
	outage := p.outages
	p.mu.Unlock()
	size := min(rampConns, p.maxOpen)
	p.db.SetMaxOpenConns(size)
	p.db.SetMaxIdleConns(min(size, p.maxIdle))
	p.mu.Lock()
	p.down, p.warming, p.recovering = false, false, false
	p.log.Info("database reachable again", "outage", time.Since(p.since).Round(time.Millisecond),
		"connect", connect.Round(time.Millisecond), "warm", warm.Round(time.Millisecond))
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for size < p.maxOpen {
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(rampStep):
			}
			p.mu.Lock()
			again := p.outages != outage
			p.mu.Unlock()
			if again {
				return
			}
			size = min(2*size, p.maxOpen)
			p.db.SetMaxOpenConns(size)
			p.db.SetMaxIdleConns(min(size, p.maxIdle))
		}
	}()
}

// shouldPing pings a pooled connection before its reuse when it has been idle a while (pgx's
// rule) or was last known good in an earlier generation: it most likely died with the
// server, and one ping tells without failing a request.
func (p *pgDialer) shouldPing(_ context.Context, sp stdlib.ShouldPingParams) bool {
	g, _ := sp.Conn.PgConn().CustomData()[genKey].(uint64)
	return sp.IdleDuration > time.Second || g != p.gen.Load()
}

// resetSession runs after that ping succeeded (or was not needed): the connection is good in
// the current generation.
func (p *pgDialer) resetSession(_ context.Context, c *pgx.Conn) error {
	c.PgConn().CustomData()[genKey] = p.gen.Load()
	return nil
}

func markGen(c driver.Conn, gen uint64) {
	c.(*stdlib.Conn).Conn().PgConn().CustomData()[genKey] = gen
}

// deadConnTracer starts a new generation when a query finds its connection dead (the server
// restarted, or closed it), so the connections pooled with it are pinged before reuse.
type deadConnTracer struct {
	next pgx.QueryTracer
	gen  *atomic.Uint64
}

func (t deadConnTracer) TraceQueryStart(ctx context.Context, c *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if t.next != nil {
		ctx = t.next.TraceQueryStart(ctx, c, d)
	}
	return ctx
}

func (t deadConnTracer) TraceQueryEnd(ctx context.Context, c *pgx.Conn, d pgx.TraceQueryEndData) {
	if d.Err != nil && c.IsClosed() {
		t.gen.Add(1)
	}
	if t.next != nil {
		t.next.TraceQueryEnd(ctx, c, d)
	}
}

// unreachable reports an error that says the server cannot be reached or does not take this
// session now (as opposed to a wrong password or a bad statement). With several hosts in the
// DSN, any host's error that says so counts: another host may be the one to come back.
func unreachable(err error) bool {
	var ne net.Error
	var pe *pgconn.PgError
	// Class 57P: admin shutdown, crash shutdown, cannot connect now (starting up).
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "57P") ||
		errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) ||
		// A standby where target_session_attrs wants a primary: not yet promoted.
		errors.Is(err, pgconn.ErrReadOnlyConnection) || errors.Is(err, pgconn.ErrStandbyConnection)
}

// Unreachable reports whether err says PostgreSQL cannot be reached or does not take the
// session now (it is starting up or shutting down, or is a standby not yet promoted): worth
// retrying.
func Unreachable(err error) bool { return unreachable(err) }

// warmConn prepares the statements a request reads before it is answered and runs each once
// (with arguments matching nothing), so that the new backend has parsed, planned and cached
// them before a request needs them. Prepared under their own text as name, they are found by
// database/sql's own preparation and plain queries of the same text (pgx looks names up first).
func (d *DB) warmConn(ctx context.Context, c *pgx.Conn) error {
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{keyAuthQuery(), []any{[]byte{}, d.clock()}},
		{d.accountsByGroupQuery(), []any{int64(0)}},
	} {
		if _, err := c.Prepare(ctx, q.sql, q.sql); err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		if _, err := c.Exec(ctx, q.sql, q.args...); err != nil {
			return fmt.Errorf("run: %w", err)
		}
	}
	return nil
}
