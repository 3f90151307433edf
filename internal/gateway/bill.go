package gateway

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/fluxcode/fluxcode/internal/billing"
	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// bill prices what the request consumed and hands the ledger row to the node's batcher.
// Every delivered request gets exactly one row under its gateway request id, partial ones
// included; the store makes the row and the balance or subscription change one transaction,
// and skips an id it already has, so a retried batch cannot bill twice (invariant 3).
func (c *call) bill(res *result) {
	if c.op != provider.OpMessages {
		return
	}
	g := c.g
	now := g.now()
	a := c.auth
	tokens := billing.Tokens{
		Input: res.usage.Input, Output: res.usage.Output,
		CacheCreation5m: res.usage.CacheCreation5m, CacheCreation1h: res.usage.CacheCreation1h,
		CacheRead: res.usage.CacheRead,
	}
	// The upstream model is what was consumed; the client's name is the fallback for a
	// mapping to a name the table does not know.
	var cost store.Nanos
	if price, ok := g.lookupPrice(res.upstreamModel, c.req.Model); ok {
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
	g.biller.add(row)
	g.biller.touch(res.account.ID, a.Key.ID, now)
}

// lookupPrice finds the price of the first model the table knows. An unknown model bills
// zero cost (its tokens are still recorded) and is logged once per model.
func (g *Gateway) lookupPrice(models ...string) (billing.Price, bool) {
	for _, m := range models {
		if p, ok := g.prices.Lookup(m); ok {
			return p, true
		}
	}
	if _, warned := g.unpriced.LoadOrStore(models[0], true); !warned {
		g.log.Warn("no price for model; its usage is recorded at zero cost", "model", models[0])
	}
	return billing.Price{}, false
}

// biller writes ledger rows in batches (BillBatchSize rows or BillFlushInterval, whichever
// comes first), retrying transient database errors with backoff. Rows wait in a bounded
// queue; when it is full, requests wait to enqueue (back-pressure, never loss). Close
// writes what is left.
type biller struct {
	st    store.Store
	ps    coord.PubSub
	cfg   Config
	log   *slog.Logger
	m     *metrics
	auth  *authCache
	queue chan store.Usage

	mu       sync.RWMutex
	closed   bool
	touchMu  sync.Mutex
	accounts map[int64]time.Time
	keys     map[int64]time.Time

	stopped chan struct{} // closed when run has written everything
	// ctx ends when Close's context ends: writes in progress stop retrying.
	ctx     context.Context
	abandon context.CancelFunc
}

func newBiller(st store.Store, ps coord.PubSub, cfg Config, log *slog.Logger, m *metrics, auth *authCache) *biller {
	ctx, abandon := context.WithCancel(context.Background())
	return &biller{st: st, ps: ps, cfg: cfg, log: log, m: m, auth: auth,
		queue:    make(chan store.Usage, cfg.BillQueueSize),
		accounts: make(map[int64]time.Time), keys: make(map[int64]time.Time),
		stopped: make(chan struct{}), ctx: ctx, abandon: abandon}
}

func (b *biller) depth() float64 { return float64(len(b.queue)) }

// add enqueues a row. After Close it writes the row itself: a request still finishing
// during shutdown is billed all the same.
func (b *biller) add(row store.Usage) {
	b.mu.RLock()
	if !b.closed {
		b.queue <- row
		b.mu.RUnlock()
		return
	}
	b.mu.RUnlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.write(ctx, []store.Usage{row})
}

func (b *biller) touch(account, key int64, at time.Time) {
	b.touchMu.Lock()
	defer b.touchMu.Unlock()
	b.accounts[account] = at
	b.keys[key] = at
}

// run collects rows into batches until the queue is closed and drained.
func (b *biller) run() {
	defer close(b.stopped)
	ticker := time.NewTicker(b.cfg.BillFlushInterval)
	defer ticker.Stop()
	batch := make([]store.Usage, 0, b.cfg.BillBatchSize)
	flush := func() {
		if len(batch) > 0 {
			b.write(b.ctx, batch)
			batch = batch[:0]
		}
		b.flushTouches()
	}
	for {
		select {
		case row, ok := <-b.queue:
			if !ok {
				flush()
				return
			}
			batch = append(batch, row)
			if len(batch) >= b.cfg.BillBatchSize {
				flush()
			}
		case <-ticker.C:
			flush()
		}
	}
}

// write records rows, retrying until it succeeds or Close gives up. A batch the store
// refuses as invalid (a row whose user was deleted meanwhile) is retried row by row, so one
// bad row cannot block or lose the others.
func (b *biller) write(ctx context.Context, rows []store.Usage) {
	backoff := 50 * time.Millisecond
	for {
		_, err := b.st.RecordUsage(ctx, rows)
		if err == nil {
			b.m.billedRows.WithLabelValues("written").Add(float64(len(rows)))
			b.charged(rows)
			return
		}
		if errors.Is(err, store.ErrInvalid) {
			if len(rows) == 1 {
				b.m.billedRows.WithLabelValues("refused").Inc()
				b.log.Error("the store refused a usage row", "request_id", rows[0].RequestID,
					"user", rows[0].UserID, "charged", int64(rows[0].Charged), "err", err)
				return
			}
			for i := range rows {
				b.write(ctx, rows[i:i+1])
			}
			return
		}
		b.m.billErrors.Inc()
		b.log.Warn("writing usage failed; retrying", "rows", len(rows), "err", err)
		select {
		case <-ctx.Done():
			b.m.billedRows.WithLabelValues("lost").Add(float64(len(rows)))
			for i := range rows {
				b.log.Error("usage row not written at shutdown", "request_id", rows[i].RequestID,
					"user", rows[i].UserID, "charged", int64(rows[i].Charged))
			}
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// charged makes every node read the charged users' balances and subscription usage afresh:
// this node drops its copies at once, the others on invalidate.User. Admission reads those
// copies, so this is what keeps a user's overspend small (doc.go, "Billing"). A publish that
// fails stops the rest: Redis is likely down, and the other nodes' copies expire within
// AuthCacheTTL anyway.
func (b *biller) charged(rows []store.Usage) {
	users := make(map[int64]bool, len(rows))
	for i := range rows {
		users[rows[i].UserID] = true
	}
	dropUsers(b.auth, users)
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	for id := range users {
		if err := invalidate.Publish(ctx, b.ps, invalidate.User, id); err != nil {
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
	if !b.closed {
		b.closed = true
		close(b.queue)
	}
	b.mu.Unlock()
	select {
	case <-b.stopped:
		return nil
	case <-ctx.Done():
		b.abandon()
		<-b.stopped
		return errors.New("gateway: usage rows were left unwritten at shutdown (logged)")
	}
}
