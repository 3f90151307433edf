package gateway

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/fluxcode/fluxcode/internal/invalidate"
	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// relay runs attempts until one answers the client: schedule an account (taking its slot),
// forward, and on a failure before the first byte, try another account — at most
// MaxAccountSwitches others, never one twice. It returns the delivered result, or nil when
// the request ended otherwise (already answered).
func (c *call) relay() *result {
	tried := make(map[int64]bool)
	var last *provider.Failure
	for switches := 0; ; switches++ {
		l, ok := c.schedule(tried, last)
		if !ok {
			return nil
		}
		res, f := c.tryAccount(l)
		if f == nil {
			return res
		}
		c.g.metrics.failovers.WithLabelValues(failoverReason(f)).Inc()
		c.g.log.WarnContext(c.ctx(), "upstream attempt failed", "account", l.cand.Account.ID,
			"status", f.Status, "message", f.Message)
		tried[l.cand.Account.ID] = true
		last = f
		if c.gone.Load() {
			// Client gone: no one to serve, so no failover (the account was still marked
			// when the failure was its own).
			c.outcome = "client_gone"
			return nil
		}
		if switches >= c.g.cfg.MaxAccountSwitches {
			c.failUpstream(last)
			return nil
		}
	}
}

// tryAccount forwards to the lease's account and ends the attempt, whatever happens.
func (c *call) tryAccount(l *lease) (res *result, f *provider.Failure) {
	defer func() { c.release(l, f != nil) }()
	return c.forward(l)
}

// schedule picks the account for the next attempt and takes its slot, together with the
// user's and key's, waiting in the queue while none is free. It answers the client and
// returns false when the request cannot go on.
func (c *call) schedule(tried map[int64]bool, last *provider.Failure) (*lease, bool) {
	var w waiter
	defer c.leaveQueue(&w)
	for {
		cands, keep, err := c.candidates(tried)
		if err != nil {
			c.g.log.ErrorContext(c.ctx(), "reading the group's accounts failed", "err", err)
			c.fail(provider.KindAPI, 0, "the gateway cannot read its accounts right now", "")
			return nil, false
		}
		if len(cands) == 0 {
			c.failUpstream(last)
			return nil, false
		}
		if !c.needsSlots() {
			return &lease{cand: cands[0]}, true
		}
		l, err := c.tryAcquire(cands, keep)
		if err != nil {
			c.coordFailed(err)
			return nil, false
		}
		if l != nil {
			return l, true
		}
		if !c.wait(&w) {
			return nil, false
		}
	}
}

func failoverReason(f *provider.Failure) string {
	if f.Status == 0 {
		if f.Mark.Kind != provider.MarkNone {
			return "stream_error"
		}
		return "network"
	}
	return strconv.Itoa(f.Status)
}

// matchRule returns the first enabled admin rule that the upstream answer matches: same
// status, and the keyword (case-insensitive) in the body, or no keyword.
func (g *Gateway) matchRule(ctx context.Context, status int, body []byte) *store.ErrorRule {
	rules, err := g.errorRules(ctx)
	if err != nil {
		g.log.WarnContext(ctx, "reading error rules failed", "err", err)
		return nil
	}
	var lower []byte
	for i := range rules {
		r := &rules[i]
		if !r.Enabled || r.StatusCode != status || r.Minutes <= 0 {
			continue
		}
		if r.Keyword == "" {
			return r
		}
		if lower == nil {
			lower = bytes.ToLower(body)
		}
		if bytes.Contains(lower, bytes.ToLower([]byte(r.Keyword))) {
			return r
		}
	}
	return nil
}

// markAccount records an upstream failure on the account, in the store that every node
// reads, and tells every node to drop its copy. An admin rule wins over the built-in reaction:
// it exists to keep a transient 401/403 from putting an account in the error state (the
// older implementation's 7.2 #11).
func (g *Gateway) markAccount(acct *store.Account, f *provider.Failure, rule *store.ErrorRule) {
	now := g.now()
	var m store.AccountMark
	switch {
	case rule != nil:
		until := now.Add(minutes(rule.Minutes))
		reason := fmt.Sprintf("rule %d: upstream %d: %s", rule.ID, f.Status, clip(f.Message, 500))
		m.TempUnschedUntil, m.TempUnschedReason = &until, &reason
	case f.Mark.Kind == provider.MarkRateLimited:
		until := f.Mark.Until
		if until.IsZero() || !until.After(now) {
			until = now.Add(g.cfg.RateLimitCooldown)
		}
		m.RateLimitedUntil = &until
	case f.Mark.Kind == provider.MarkOverloaded:
		until := now.Add(g.cfg.OverloadCooldown)
		m.OverloadedUntil = &until
	case f.Mark.Kind == provider.MarkError:
		status := store.StatusError
		msg := clip(f.Message, 1000)
		if f.Status != 0 {
			msg = fmt.Sprintf("upstream %d: %s", f.Status, msg)
		}
		m.Status, m.ErrorMessage = &status, &msg
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := g.store.MarkAccount(ctx, acct.ID, m); err != nil {
		g.log.Error("marking an account failed", "account", acct.ID, "err", err)
		return
	}
	g.accounts.drop(nil) // this node at once; the others through the message below
	if err := invalidate.Publish(ctx, g.coord, invalidate.Account, acct.ID); err != nil {
		g.log.Warn("publishing an account mark failed; other nodes see it when their cache expires", "err", err)
	}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func minutes(n int) time.Duration { return time.Duration(n) * time.Minute }
