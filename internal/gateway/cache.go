package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/store"
)

const invalidationChannel = invalidate.Channel

// cache keeps values a node reads on every request (key lookups, a group's accounts, error
// rules) for a short TTL. Concurrent misses of one key share one load. Invalidation drops
// entries and bumps a generation, so a load that started before an invalidation does not
// store what it read. With negTTL > 0, store.ErrNotFound is remembered too.
//
// Changes that keep an entry (replace, stale) are frequent under load (every charge of
// every node), so they must not stop loads in flight from storing, or a busy node would
// hardly ever keep a key: they are noted instead (marks), and a load that one of them
// matches is stored already due for a read.
//
// An entry past its TTL, or marked stale (a charge changed the balance it holds), is kept as
// the last known value: when reading it again fails for any reason but ErrNotFound (the
// database restarting, unreachable or slow), get answers the last known value and tries the
// store again fallbackRetry later, so requests of known keys keep being served through a
// database outage (doc.go, "Billing") and see the database again within fallbackRetry of
// its return. A dropped entry is gone: invalidations that can take rights away drop.
type cache[K comparable, V any] struct {
	ttl, negTTL time.Duration
	now         func() time.Time

	mu      sync.Mutex
	gen     uint64
	entries map[K]cacheEntry[V]
	flights map[K]*flight[V]
	// marks are the matchers of the changes made while loads were in flight; the first has
	// sequence number markBase. They are forgotten once no load in flight began before them.
	marks    []func(K, V) bool
	markBase uint64
}

type cacheEntry[V any] struct {
	v       V
	missing bool
	expires time.Time
}

type flight[V any] struct {
	done chan struct{}
	v    V
	err  error
	mark uint64 // the sequence number of the next change mark when the load began
}

const (
	// loadTimeout bounds a read of the store that nothing can stand in for.
	loadTimeout = storeTimeout
	// fallbackLoadTimeout bounds a read that a last known value can stand in for: a database
	// that does not answer within it is treated as down for this request.
	fallbackLoadTimeout = time.Second
	// fallbackRetry is how long a last known value is answered after a failed read before
	// the store is tried again: what bounds a node's recovery after a database outage, and
	// its attempts while the database is away (one per entry per interval, not one per
	// request).
	fallbackRetry = 50 * time.Millisecond
)

func newCache[K comparable, V any](ttl, negTTL time.Duration, now func() time.Time) *cache[K, V] {
	return &cache[K, V]{ttl: ttl, negTTL: negTTL, now: now,
		entries: make(map[K]cacheEntry[V]), flights: make(map[K]*flight[V])}
}

// get returns k's value, loading it with load on a miss. ctx's values reach load, its end
// does not: other requests may wait on the same load, and one client leaving must not fail
// them. The load is bounded by loadTimeout, or fallbackLoadTimeout when a last known value
// can answer instead.
func (c *cache[K, V]) get(ctx context.Context, k K, load func(context.Context) (V, error)) (V, error) {
	c.mu.Lock()
	e, known := c.entries[k]
	if known && c.now().Before(e.expires) {
		c.mu.Unlock()
		if e.missing {
			var zero V
			return zero, store.ErrNotFound
		}
		return e.v, nil
	}
	if f, ok := c.flights[k]; ok {
		c.mu.Unlock()
		<-f.done
		return f.v, f.err
	}
	fallback := known && !e.missing
	f := &flight[V]{done: make(chan struct{}), mark: c.markBase + uint64(len(c.marks))}
	c.flights[k] = f
	gen := c.gen
	c.mu.Unlock()

	timeout := loadTimeout
	if fallback {
		timeout = fallbackLoadTimeout
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	f.v, f.err = load(lctx)
	cancel()

	c.mu.Lock()
	if c.flights[k] == f {
		delete(c.flights, k)
	}
	switch {
	case gen != c.gen: // dropped meanwhile: what was read may be what the drop undid
		if f.err != nil && !errors.Is(f.err, store.ErrNotFound) && fallback {
			f.v, f.err = c.lastKnown(k, f.v, f.err)
		}
	case f.err == nil:
		expires := c.now().Add(c.ttl)
		if c.changedSince(f.mark, k, f.v) {
			expires = time.Time{} // read before a change, perhaps: keep it, but read again
		}
		c.entries[k] = cacheEntry[V]{v: f.v, expires: expires}
	case errors.Is(f.err, store.ErrNotFound):
		if c.negTTL > 0 {
			c.entries[k] = cacheEntry[V]{missing: true, expires: c.now().Add(c.negTTL)}
		}
	case fallback:
		f.v, f.err = c.lastKnown(k, f.v, f.err)
		if f.err == nil {
			// Answer the last known value for a while before trying again. (A change
			// since means the store answers again: then read again at once.)
			if cur := c.entries[k]; !c.changedSince(f.mark, k, cur.v) {
				cur.expires = c.now().Add(fallbackRetry)
				c.entries[k] = cur
			}
		}
	}
	c.forgetMarks()
	c.mu.Unlock()
	close(f.done)
	return f.v, f.err
}

// lastKnown returns k's entry as it is now, when there is one to answer with: a change may
// have updated it meanwhile, and a drop (a right taken away) removed it, which leaves
// nothing but the error. c.mu is held.
func (c *cache[K, V]) lastKnown(k K, v V, err error) (V, error) {
	if cur, ok := c.entries[k]; ok && !cur.missing {
		return cur.v, nil
	}
	return v, err
}

// changedSince reports whether a change noted since mark matches k and v; when the marks
// since then are forgotten, it cannot tell and says yes. c.mu is held.
func (c *cache[K, V]) changedSince(mark uint64, k K, v V) bool {
	if mark < c.markBase {
		return true
	}
	for _, m := range c.marks[mark-c.markBase:] {
		if m(k, v) {
			return true
		}
	}
	return false
}

// forgetMarks drops the marks no load in flight can need: under steady load some load is
// nearly always in flight, so waiting for none would keep them all. c.mu is held.
func (c *cache[K, V]) forgetMarks() {
	oldest := c.markBase + uint64(len(c.marks))
	for _, f := range c.flights {
		oldest = min(oldest, f.mark)
	}
	if oldest > c.markBase {
		c.marks = c.marks[oldest-c.markBase:]
		c.markBase = oldest
	}
	if len(c.marks) == 0 {
		c.marks = nil
	}
}

// note records a change for the loads in flight (see cache). c.mu is held.
func (c *cache[K, V]) note(match func(K, V) bool) {
	if len(c.flights) > 0 {
		c.marks = append(c.marks, match)
	}
}

// drop removes the entries match selects (missing reports a remembered ErrNotFound, with
// the zero V); a nil match drops everything. Loads in flight will not store their result.
func (c *cache[K, V]) drop(match func(k K, v V, missing bool) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.flights)
	for k, e := range c.entries {
		if match == nil || match(k, e.v, e.missing) {
			delete(c.entries, k)
		}
	}
}

// replace swaps the values that with returns ok for, keeping their expiry (remembered
// misses are left alone). A load in flight that with would change may have read before the
// change that calls for the replacement: it is stored due for a read.
func (c *cache[K, V]) replace(with func(k K, v V) (V, bool)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.note(func(k K, v V) bool { _, ok := with(k, v); return ok })
	for k, e := range c.entries {
		if e.missing {
			continue
		}
		if v, ok := with(k, e.v); ok {
			e.v = v
			c.entries[k] = e
		}
	}
}

// stale marks the entries match selects as due for a read (their value changed in the
// store) while keeping them as the last known value (see cache); so are loads in flight
// that it matches, when they are stored.
func (c *cache[K, V]) stale(match func(k K, v V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.note(match)
	for k, e := range c.entries {
		if !e.missing && match(k, e.v) {
			e.expires = time.Time{}
			c.entries[k] = e
		}
	}
}

type (
	authCache    = cache[string, *store.KeyAuth]
	accountCache = cache[int64, []store.Account]
	rulesCache   = cache[struct{}, []store.ErrorRule]
	proxyCache   = cache[int64, *store.Proxy]
)

// debitUsers applies this node's committed charges to its cached copies of the users'
// balances (copies: requests running hold the old ones), so that admission here sees them
// without reading the store; other nodes' charges arrive by invalidate.Balance.
func debitUsers(ac *authCache, debits map[int64]store.Nanos) {
	ac.replace(func(_ string, a *store.KeyAuth) (*store.KeyAuth, bool) {
		d, ok := debits[a.User.ID]
		if !ok {
			return nil, false
		}
		n := *a
		n.User.Balance -= d
		return &n, true
	})
}

// staleUsers marks the cached keys of the given users for a fresh read (their balance or
// subscription usage changed), keeping them as the last known value.
func staleUsers(ac *authCache, users map[int64]bool) {
	ac.stale(func(_ string, a *store.KeyAuth) bool { return users[a.User.ID] })
}

// groupAccounts returns the group's accounts, from the node cache. The slice is shared:
// callers must not modify it.
func (g *Gateway) groupAccounts(ctx context.Context, groupID int64) ([]store.Account, error) {
	return g.accounts.get(ctx, groupID, func(ctx context.Context) ([]store.Account, error) {
		return g.store.AccountsByGroup(ctx, groupID)
	})
}

// errorRules returns the admins' error rules, from the node cache.
func (g *Gateway) errorRules(ctx context.Context) ([]store.ErrorRule, error) {
	return g.rules.get(ctx, struct{}{}, func(ctx context.Context) ([]store.ErrorRule, error) {
		return g.store.ListErrorRules(ctx)
	})
}

// proxy returns an account's proxy, from the node cache.
func (g *Gateway) proxy(ctx context.Context, id int64) (*store.Proxy, error) {
	return g.proxies.get(ctx, id, func(ctx context.Context) (*store.Proxy, error) {
		return g.store.GetProxy(ctx, id)
	})
}

// listen applies invalidations from every node (this one included) to the caches. The
// empty message after a reconnection, and anything unreadable, drops everything.
func (g *Gateway) listen(events <-chan string) {
	for msg := range events {
		m := invalidate.Parse(msg)
		switch m.Kind {
		case invalidate.Key:
			// A new key may have been remembered as unknown: drop those too.
			g.auth.drop(func(_ string, a *store.KeyAuth, missing bool) bool { return missing || a.Key.ID == m.ID })
		case invalidate.User:
			g.auth.drop(func(_ string, a *store.KeyAuth, missing bool) bool { return !missing && a.User.ID == m.ID })
		case invalidate.Balance:
			// Charges only lower a balance (or fill a window): the key stays known, so that a
			// database outage does not make it unknown (doc.go, "Billing").
			g.auth.stale(func(_ string, a *store.KeyAuth) bool { return a.User.ID == m.ID })
		case invalidate.Group:
			g.auth.drop(func(_ string, a *store.KeyAuth, missing bool) bool { return !missing && a.Group.ID == m.ID })
			g.accounts.drop(func(id int64, _ []store.Account, _ bool) bool { return id == m.ID })
		case invalidate.Account:
			// An account may have joined or left groups: every group's list may change.
			g.accounts.drop(nil)
			g.proxies.drop(nil)
		case invalidate.ErrorRules:
			g.rules.drop(nil)
		case invalidate.Settings:
			g.settings.drop(nil)
		default:
			g.settings.drop(nil)
			g.auth.drop(nil)
			g.accounts.drop(nil)
			g.rules.drop(nil)
			g.proxies.drop(nil)
		}
	}
}
