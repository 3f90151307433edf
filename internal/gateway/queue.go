package gateway

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/provider"
)

// waiter is a request's place in the wait queue.
type waiter struct {
	joined   bool
	deadline time.Time
	nextPing time.Time
	backoff  time.Duration
	started  time.Time
}

// wait blocks until a slot may have freed, joining the wait queue on the first call. It
// answers the client and returns false when the request must give up: the queue is full,
// the wait timed out, or the client left.
func (c *call) wait(w *waiter) bool {
	g := c.g
	now := g.now()
	if !w.joined {
		if g.cfg.WaitQueueMax <= 0 {
			c.reject(RejectConcurrency, provider.KindRateLimit, 0, "concurrency limit reached; retry shortly", retryShortly)
			return false
		}
		a := c.auth
		queues := []coord.SlotReq{
			{Key: userQueue(a.User.ID), Limit: g.cfg.WaitQueueMax},
			{Key: keyQueue(a.Key.ID), Limit: g.cfg.WaitQueueMax},
		}
		ok, _, err := g.coord.AcquireSlots(c.ctx(), c.id, g.cfg.SlotTTL, queues...)
		if err != nil {
			c.coordFailed(err)
			return false
		}
		if !ok {
			c.reject(RejectQueueFull, provider.KindRateLimit, 0, "too many requests are waiting for a concurrency slot", retryShortly)
			return false
		}
		keys := slotKeys(queues)
		g.slots.add(c.id, keys)
		c.held = appendMissing(c.held, keys)
		*w = waiter{joined: true, started: now, deadline: now.Add(g.cfg.WaitTimeout),
			nextPing: now.Add(g.cfg.PingInterval), backoff: 20 * time.Millisecond}
		g.metrics.slotWaits.Inc()
	}
	if !now.Before(w.deadline) {
		c.reject(RejectConcurrency, provider.KindRateLimit, 0, "concurrency limit reached and no slot freed in time; retry shortly", retryShortly)
		return false
	}
	// Local releases wake us at once; releases on other nodes are seen by polling with a
	// jittered backoff.
	sleep := min(w.backoff, w.deadline.Sub(now))
	if c.pings() {
		sleep = min(sleep, max(w.nextPing.Sub(now), 0))
	}
	sleep = sleep/2 + rand.N(sleep/2+1)
	w.backoff = min(w.backoff*2, 250*time.Millisecond)
	if !c.pause(sleep, g.slots.released()) {
		return false
	}
	if c.pings() && !g.now().Before(w.nextPing) {
		w.nextPing = g.now().Add(g.cfg.PingInterval)
		if !c.ping() {
			return false
		}
	}
	return true
}

// leaveQueue gives back the request's wait-queue place once it has its slots.
func (c *call) leaveQueue(w *waiter) {
	if !w.joined {
		return
	}
	g := c.g
	g.metrics.slotWaitSeconds.Observe(g.now().Sub(w.started).Seconds())
	keys := []string{userQueue(c.auth.User.ID), keyQueue(c.auth.Key.ID)}
	g.releaseSlots(c.id, keys)
	c.held = slices.DeleteFunc(c.held, func(k string) bool { return slices.Contains(keys, k) })
	w.joined = false
}

// pings: only a streaming client can be kept waiting with keep-alive events, and only in a
// protocol that has one.
func (c *call) pings() bool {
	return c.req.Stream && c.op == provider.OpMessages && c.prov.PingEvent() != nil
}

// ping sends one keep-alive event, starting the event stream if needed. From the first ping
// on the status is 200, so a later failure must be an error event.
func (c *call) ping() bool {
	if !c.committed {
		c.startStream(nil)
	}
	if !c.writeEvent(c.prov.PingEvent()) {
		c.outcome = outcomeClientGone
		return false
	}
	return true
}
