package gateway

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxcode/fluxcode/internal/billing"
	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/store"
)

// billAttemptTimeout bounds one ledger write attempt; a batch normally commits in
// milliseconds.
const billAttemptTimeout = 10 * time.Second

// bill prices what the request consumed and hands the ledger row to the node's writer.
// Every delivered request gets exactly one row under its gateway request id, partial ones
// included; the store makes the row and the balance or subscription change one transaction,
// and skips an id it already has, so a retried batch cannot bill twice (invariant 3).
//
// For an answer whose end is held back (res.tail), it returns what to wait on for the row's
// commit; nil when no one needs to wait (a partial answer: its client sees no end).
func (c *call) bill(res *result) *commit {
	if !c.billed() {
		return nil
	}
	g := c.g
	now := g.now()
	a := c.auth
	tokens := res.usage
	var cost store.Nanos
	if price, ok := c.price(res.upstreamModel); ok {
		cost = billing.Cost(price, tokens)
	}
	row := store.Usage{
		RequestID: c.id, UserID: a.User.ID, APIKeyID: a.Key.ID, AccountID: res.account.ID,
		GroupID: a.Group.ID, Platform: c.prov.Platform(), Model: c.req.Model, UpstreamModel: res.upstreamModel,
		InputTokens: tokens.Input, OutputTokens: tokens.Output,
		CacheCreation5mTokens: tokens.CacheCreation5m, CacheCreation1hTokens: tokens.CacheCreation1h,
		CacheReadTokens: tokens.CacheRead,
		Cost:            cost, RateMultiplierPPM: a.Group.RateMultiplierPPM,
		Charged:     billing.ApplyMultiplier(cost, a.Group.RateMultiplierPPM),
		BillingType: a.Group.BillingType,
		Stream:      res.stream, Partial: res.partial, StatusCode: res.status,
		DurationMS: now.Sub(c.start).Milliseconds(), FirstByteMS: res.firstByte.Milliseconds(),
		CreatedAt: now,
	}
	done := g.biller.add(row, len(res.tail) > 0 && !c.gone.Load())
	g.biller.touch(res.account.ID, a.Key.ID, now)
	return done
}

// commit is what an answer waits on: done is closed when the writer is through with the row,
// committed (set before the close) says whether it is in the ledger.
type commit struct {
	done      chan struct{}
	committed bool
}

func (p *commit) finish(committed bool) {
	p.committed = committed
	close(p.done)
}

// awaitCommit waits until the row is committed, for at most BillCommitWait: a database that
// does not answer must not hang the answer; one that fails is not waited for at all (the
// writer lets the waiters go, see biller.goneDown). The row then stays queued and is
// retried; only a node that dies before the database is back loses it. A client that
// leaves ends the wait: there is no end left to hold back.
func (c *call) awaitCommit(p *commit) {
	if p == nil {
		return
	}
	t := time.NewTimer(c.g.cfg.BillCommitWait)
	defer t.Stop()
	select {
	case <-p.done:
		if p.committed {
			return
		}
	case <-c.ctx().Done():
		return
	case <-t.C:
		c.g.log.WarnContext(c.ctx(), "the ledger row was not committed within the commit wait; "+
			"completing the answer, the row stays queued", "request_id", c.id, "wait", c.g.cfg.BillCommitWait)
	}
	c.g.metrics.billUncommitted.Inc()
}

// sendTail completes the answer with its held-back end. An event is flushed at once, like
// every event; a JSON body's end goes out when the handler returns. Either way the slots
// were given back before (serveMessages), so a client that sends its next request at once
// finds them free.
func (c *call) sendTail(res *result) {
	if len(res.tail) == 0 || c.gone.Load() {
		return
	}
	if c.sse {
		c.writeEvent(res.tail)
		return
	}
	_, _ = c.w.Write(res.tail) // a failure means the client left: nothing more to do
}

// biller writes ledger rows by group commit: one writer per node takes every row queued
// while it was busy (at most BillBatchSize) and writes them in one store call, so at
// concurrency 1 a row waits for one short transaction and under load one transaction
// carries many rows. A row whose answer is complete has a done channel, closed when the row
// is committed (or refused): the request holds back the end of its answer until then
// (doc.go, "Billing"). Database errors are retried every billRetryMax at most; rows queued
// meanwhile wait in memory, at most BillQueueMax of them (admission refuses beyond: full).
// The charges of the rows not yet written are kept per user, for admission (pending).
// Close writes what is left.
type biller struct {
	st   Store
	ps   coord.PubSub
	cfg  Config
	log  *slog.Logger
	m    *metrics
	auth *authCache

	mu     sync.Mutex
	closed bool
	rows   []store.Usage  // queued, in arrival order
	dones  []*commit      // dones[i] belongs to rows[i]; nil when no one waits
	wake   chan struct{}  // capacity 1: the writer has work (or Close was called)
	notify chan struct{}  // closed by Close: the notifier's last round
	spareR []store.Usage  // the writer's previous batch, reused
	spareD []*commit      // its commits
	users  map[int64]bool // users charged since the last notification
	// writing counts the rows taken by the writer and not yet through; pending sums, per
	// user, the charges of the queued and writing rows.
	writing int
	pending map[int64]store.Nanos
	// failing is set while the database refuses writes (two attempts in a row failed):
	// answers do not wait for it then.
	failing  atomic.Bool
	touchMu  sync.Mutex
	accounts map[int64]time.Time
	keys     map[int64]time.Time

	stopped chan struct{} // closed when run has written everything
	// ctx ends when Close's context ends: writes in progress stop retrying.
	ctx     context.Context
	abandon context.CancelFunc
}

func newBiller(st Store, ps coord.PubSub, cfg Config, log *slog.Logger, m *metrics, auth *authCache) *biller {
	ctx, abandon := context.WithCancel(context.Background())
	return &biller{st: st, ps: ps, cfg: cfg, log: log, m: m, auth: auth,
		wake: make(chan struct{}, 1), notify: make(chan struct{}), users: make(map[int64]bool),
		pending:  make(map[int64]store.Nanos),
		accounts: make(map[int64]time.Time), keys: make(map[int64]time.Time),
		stopped: make(chan struct{}), ctx: ctx, abandon: abandon}
}

// billRetryMax is the longest pause between two attempts at a batch: once the database
// answers again, the rows queued during its outage are written within it.
const billRetryMax = 100 * time.Millisecond

// depth is how many rows are not yet written (queued, or in the batch being written).
func (b *biller) depth() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return float64(len(b.rows) + b.writing)
}

// full reports whether the queue holds BillQueueMax rows or more: admission refuses then,
// rather than serve what the node could not keep for the ledger.
func (b *biller) full() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.rows)+b.writing >= b.cfg.BillQueueMax
}

// pendingFor is what the user's rows not yet in the ledger charge: admission counts it
// against the last known balance, which does not include it (doc.go, "Billing").
func (b *biller) pendingFor(user int64) store.Nanos {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pending[user]
}

// add queues a row. With wait, it returns the commit to wait on; without, nil. While the
// database is failing, the commit is returned already finished, uncommitted: there is no
// point in waiting. After Close, add writes the row itself: a request still finishing
// during shutdown is billed all the same.
func (b *biller) add(row store.Usage, wait bool) *commit {
	var p *commit
	if wait {
		p = &commit{done: make(chan struct{})}
		if b.failing.Load() {
			p.finish(false)
			wait = false
		}
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ok := b.write(ctx, []store.Usage{row}, nil)
		if wait {
			p.finish(ok)
		}
		return p
	}
	b.rows = append(b.rows, row)
	if row.Charged != 0 {
		b.pending[row.UserID] += row.Charged
	}
	if wait {
		b.dones = append(b.dones, p)
	} else {
		b.dones = append(b.dones, nil)
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default: // the writer is already told
	}
	return p
}

func (b *biller) touch(account, key int64, at time.Time) {
	b.touchMu.Lock()
	defer b.touchMu.Unlock()
	b.accounts[account] = at
	b.keys[key] = at
}

// run is the writer: whenever rows are queued it takes them all (up to BillBatchSize) and
// writes them; it waits for more (BillGroupDelay) only when the previous batch showed load,
// never at concurrency 1. It returns once Close was called and everything is written. The
// notifier runs beside it.
func (b *biller) run() {
	defer close(b.stopped)
	notified := make(chan struct{})
	go func() { defer close(notified); b.notifier() }()
	defer func() { <-notified }()
	last := 0 // rows of the previous batch
	for {
		if last > 1 && b.cfg.BillGroupDelay > 0 {
			// Under load, let the rows of the requests finishing now join this batch: one
			// transaction for many is what keeps commits cheap per request.
			time.Sleep(b.cfg.BillGroupDelay)
		}
		rows, dones, closed := b.take()
		last = len(rows)
		if len(rows) == 0 {
			if closed {
				close(b.notify)
				return
			}
			<-b.wake
			continue
		}
		ok := b.write(b.ctx, rows, func() { b.goneDown(dones) })
		for _, d := range dones {
			if d != nil {
				d.finish(ok)
			}
		}
		b.mu.Lock()
		// The rows are in the ledger, and their charges in the cached balances (charged),
		// or they are refused or given up on: either way no longer pending. (Between the
		// two, admission counted them twice: on the safe side.)
		for i := range rows {
			if c := rows[i].Charged; c != 0 {
				if b.pending[rows[i].UserID] -= c; b.pending[rows[i].UserID] == 0 {
					delete(b.pending, rows[i].UserID)
				}
			}
		}
		b.writing = 0
		b.spareR, b.spareD = rows[:0], dones[:0]
		b.mu.Unlock()
	}
}

// take removes the next batch from the queue.
func (b *biller) take() ([]store.Usage, []*commit, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(b.rows)
	if n <= b.cfg.BillBatchSize {
		rows, dones := b.rows, b.dones
		b.rows, b.dones = b.spareR, b.spareD
		b.spareR, b.spareD = nil, nil
		b.writing = len(rows)
		return rows, dones, b.closed
	}
	max := b.cfg.BillBatchSize
	rows := append(b.spareR, b.rows[:max]...)
	dones := append(b.spareD, b.dones[:max]...)
	b.spareR, b.spareD = nil, nil
	b.rows = slices.Delete(b.rows, 0, max)
	b.dones = slices.Delete(b.dones, 0, max)
	b.writing = len(rows)
	return rows, dones, b.closed
}

// notifier makes every node read afresh the balances (and subscription usage) of the users
// charged since its last round, and records the last use of accounts and keys, once per
// BillNotifyInterval: neither needs to be per batch, and per batch would cost Redis and the
// database a call per request at low load.
func (b *biller) notifier() {
	t := time.NewTicker(b.cfg.BillNotifyInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-b.notify:
			b.notifyCharged()
			b.flushTouches()
			return
		}
		b.notifyCharged()
		b.flushTouches()
	}
}

// write records rows, retrying until it succeeds or Close gives up, and reports whether
// they are in the ledger. A batch the store refuses as invalid (a row whose user was
// deleted meanwhile) is retried row by row, so one bad row cannot block or lose the others.
// down, when set, is called once the database looks down rather than blipping: the first
// retry failed as well.
func (b *biller) write(ctx context.Context, rows []store.Usage, down func()) bool {
	backoff := 25 * time.Millisecond
	for failures := 0; ; failures++ {
		// Each attempt is bounded: a database host that stops answering (a partition, or a
		// port now held by something that is not PostgreSQL) must turn into a failed attempt
		// that is retried, not a writer stuck for good. A retry after a commit whose reply was
		// lost bills nothing twice: the store skips request ids it has.
		attempt, cancel := context.WithTimeout(ctx, billAttemptTimeout)
		res, err := b.st.RecordUsage(attempt, rows)
		cancel()
		if err == nil {
			if b.failing.Swap(false) {
				b.log.Info("the database takes usage rows again")
			}
			b.m.billedRows.WithLabelValues("written").Add(float64(len(rows)))
			b.charged(rows, res)
			return true
		}
		if errors.Is(err, store.ErrInvalid) {
			if len(rows) == 1 {
				b.m.billedRows.WithLabelValues("refused").Inc()
				b.log.Error("the store refused a usage row", "request_id", rows[0].RequestID,
					"user", rows[0].UserID, "charged", int64(rows[0].Charged), "err", err)
				return false
			}
			all := true
			for i := range rows {
				all = b.write(ctx, rows[i:i+1], nil) && all
			}
			return all
		}
		b.m.billErrors.Inc()
		if failures%50 == 0 { // every few seconds while the database is away, not per attempt
			b.log.Warn("writing usage failed; retrying", "rows", len(rows), "attempts", failures+1, "err", err)
		}
		if failures == 1 && down != nil {
			down()
		}
		select {
		case <-ctx.Done():
			b.m.billedRows.WithLabelValues("lost").Add(float64(len(rows)))
			for i := range rows {
				b.log.Error("usage row not written at shutdown", "request_id", rows[i].RequestID,
					"user", rows[i].UserID, "charged", int64(rows[i].Charged))
			}
			return false
		case <-time.After(backoff):
		}
		// Short and capped: rows queued meanwhile, and admission if the queue filled, should
		// see the database back within billRetryMax; an attempt at a database that is down
		// costs one refused connection.
		backoff = min(backoff*2, billRetryMax)
	}
}

// goneDown lets every waiting answer go, those of the batch being retried (batch) and those
// queued behind it, and makes new answers not wait: a database that refuses writes will not
// commit within any reasonable wait, and the clients should not pay for that in latency
// (doc.go, "Billing"). The rows stay queued.
func (b *biller) goneDown(batch []*commit) {
	if !b.failing.Swap(true) {
		b.log.Warn("the database refuses usage rows: answers complete without waiting for them; the rows stay queued")
	}
	release := func(dones []*commit) {
		for i, d := range dones {
			if d != nil {
				d.finish(false)
				dones[i] = nil
			}
		}
	}
	release(batch)
	b.mu.Lock()
	release(b.dones)
	b.mu.Unlock()
}

// charged brings this node's cached copies of the charged users up to date at once, so the
// node's next admission of a user sees what it has just billed: balances are debited in
// place (a read of the store per batch would cost a statement per request at low load),
// subscription users are marked to be read again (their windows have rules of their own).
// The users are remembered for the next notification of the other nodes. Rows the store
// already had (a retried batch) changed nothing and are skipped.
func (b *biller) charged(rows []store.Usage, res []store.RecordResult) {
	debits := make(map[int64]store.Nanos)
	subs := make(map[int64]bool)
	b.mu.Lock()
	for i := range rows {
		r := &rows[i]
		if i >= len(res) || !res[i].Inserted || r.Charged == 0 {
			continue
		}
		b.users[r.UserID] = true
		if r.BillingType == store.BillingBalance {
			debits[r.UserID] += r.Charged
		} else {
			subs[r.UserID] = true
		}
	}
	b.mu.Unlock()
	if len(debits) > 0 {
		debitUsers(b.auth, debits)
	}
	if len(subs) > 0 {
		staleUsers(b.auth, subs)
	}
}

// notifyCharged makes every node read the charged users' balances and subscription usage
// afresh, on invalidate.Balance (this node too: it then sees the other nodes' charges).
// The nodes keep the users' keys meanwhile: a charge must not make a key unknown, or a
// database outage right after it would refuse the key (doc.go, "Billing").
// Admission reads those copies, so this is what keeps a user's overspend small (doc.go,
// "Billing"). A publish that fails stops the rest: Redis is likely down, and the other
// nodes' copies expire within AuthCacheTTL anyway.
func (b *biller) notifyCharged() {
	b.mu.Lock()
	users := b.users
	if len(users) == 0 {
		b.mu.Unlock()
		return
	}
	b.users = make(map[int64]bool)
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	for id := range users {
		if err := invalidate.Publish(ctx, b.ps, invalidate.Balance, id); err != nil {
			b.log.Warn("publishing charged users failed; other nodes see their balances when their cache expires", "err", err)
			return
		}
	}
}

func (b *biller) flushTouches() {
	b.touchMu.Lock()
	accounts, keys := b.accounts, b.keys
	if len(accounts) == 0 && len(keys) == 0 {
		b.touchMu.Unlock()
		return
	}
	b.accounts, b.keys = make(map[int64]time.Time), make(map[int64]time.Time)
	b.touchMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	// Last-used times are informational: a failed write is logged, not retried.
	if err := b.st.TouchAccounts(ctx, accounts); err != nil {
		b.log.Warn("touching accounts failed", "err", err)
	}
	if err := b.st.TouchAPIKeys(ctx, keys); err != nil {
		b.log.Warn("touching keys failed", "err", err)
	}
}

// close stops taking rows and writes every queued one; when ctx ends first, retries stop and
// what is still unwritten is logged row by row and reported.
func (b *biller) close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	select {
	case <-b.stopped:
		return nil
	case <-ctx.Done():
		b.abandon()
		<-b.stopped
		return errors.New("gateway: usage rows were left unwritten at shutdown (logged)")
	}
}
