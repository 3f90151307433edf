package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

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
			"status", f.Status, "message", accountNote(l.cand.Account, f))
		tried[l.cand.Account.ID] = true
		c.g.accountErrs.add(c.start, l.cand.Account.ID)
		last = f
		if c.gone.Load() {
			// Client gone: no one to serve, so no failover (the account was still marked
			// when the failure was its own).
			c.outcome = outcomeClientGone
			return nil
		}
		if switches >= c.g.cfg.MaxAccountSwitches {
			c.failUpstream(last)
			return nil
		}
	}
}

// tryAccount forwards to the lease's account and ends the attempt, whatever happens. A
// login whose access token was refused as expired is renewed and tried once more first.
func (c *call) tryAccount(l *lease) (res *result, f *provider.Failure) {
	defer func() { c.release(l, f != nil) }()
	res, f = c.forward(l)
	if c.refreshDue {
		res, f = c.retryRenewed(l, f)
	}
	return res, f
}

// refreshTimeout bounds renewing a login on the request path (waiting for another node's
// renewal included).
const refreshTimeout = 20 * time.Second

// retryRenewed renews the lease's login and forwards again with the new token. When the
// renewal fails, the account is paused (a refused refresh token has already put it in error)
// and the refusal stands.
func (c *call) retryRenewed(l *lease, refused *provider.Failure) (*result, *provider.Failure) {
	c.refreshDue, c.renewed = false, true
	acct := l.cand.Account
	ctx, cancel := context.WithTimeout(c.ctx(), refreshTimeout)
	fresh, err := c.g.logins.Refresh(ctx, acct)
	cancel()
	if err != nil {
		c.g.log.WarnContext(c.ctx(), "renewing a login after its token was refused failed", "account", acct.ID,
			"err", provider.CleanText(err.Error(), maxNoteLen))
		until := c.g.now().Add(unconfirmedPause)
		reason := clipText("login renewal failed: "+err.Error(), maxNoteLen)
		c.g.recordMark(acct.ID, store.AccountMark{TempUnschedUntil: &until, TempUnschedReason: &reason})
		return nil, refused
	}
	l.cand.Account = fresh
	return c.forward(l)
}

// expiredLogin reports whether a refusal may just mean the login's access token expired: a
// 401 to a login that can be renewed, not yet renewed for this request.
func (c *call) expiredLogin(acct *store.Account, status int) bool {
	return status == http.StatusUnauthorized && c.g.logins != nil && !c.renewed && c.g.logins.Renews(acct)
}

// schedule picks the account for the next attempt and takes its slot, together with the
// user's and key's, waiting in the queue while none is free. It answers the client and
// returns false when the request cannot go on.
func (c *call) schedule(tried map[int64]bool, last *provider.Failure) (*lease, bool) {
	var w waiter
	defer c.leaveQueue(&w)
	for {
		cands, keep, err := c.candidates(tried)
		var unpriced *unpricedError
		if errors.As(err, &unpriced) {
			c.refuseUnpriced(unpriced)
			return nil, false
		}
		var unserved *unservedError
		if errors.As(err, &unserved) {
			c.reject(RejectRequest, provider.KindInvalidRequest, http.StatusBadRequest, unserved.Error(), 0)
			return nil, false
		}
		if err != nil {
			c.g.log.ErrorContext(c.ctx(), "reading the group's accounts failed", "err", err)
			c.reject(RejectDatabase, provider.KindOverloaded, http.StatusServiceUnavailable, "the gateway cannot read its accounts right now; retry shortly", retryShortly)
			return nil, false
		}
		if len(cands) == 0 {
			c.failUpstream(last)
			return nil, false
		}
		if !c.needsSlots() {
			return &lease{cand: cands[0]}, true
		}
		l, recovering, err := c.tryAcquire(cands, keep)
		if err != nil {
			c.coordFailed(err)
			return nil, false
		}
		if l != nil {
			return l, true
		}
		if recovering > 0 {
			if !c.waitRecovery(recovering) {
				return nil, false
			}
			continue
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
// status, and the keyword (case-insensitive) in the body, or no keyword. A keyword that the
// client's own request contains proves nothing: the upstream may be quoting the client (an
// unknown anthropic-beta value comes back inside Anthropic's 400), and one request would
// then pause every account of a group. Such a rule is skipped for this answer, which leaves
// the provider's own classification in charge.
func (c *call) matchRule(status int, body []byte) *store.ErrorRule {
	rules, err := c.g.errorRules(c.ctx())
	if err != nil {
		c.g.log.WarnContext(c.ctx(), "reading error rules failed", "err", err)
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
		if bytes.Contains(lower, bytes.ToLower([]byte(r.Keyword))) && !c.echoes(r.Keyword) {
			return r
		}
	}
	return nil
}

// echoes reports whether text occurs, ignoring case, in what the client sent: a header
// value, the query, or the body, as sent or with its JSON strings unescaped (an upstream
// quotes the decoded value). Only error answers get here, so reading the whole body again
// costs nothing on the path that matters.
func (c *call) echoes(text string) bool {
	needle := strings.ToLower(text)
	if needle == "" {
		return false
	}
	for _, vs := range c.r.Header {
		for _, v := range vs {
			if strings.Contains(strings.ToLower(v), needle) {
				return true
			}
		}
	}
	if q, err := url.QueryUnescape(c.r.URL.RawQuery); strings.Contains(strings.ToLower(c.r.URL.RawQuery), needle) ||
		err == nil && strings.Contains(strings.ToLower(q), needle) {
		return true
	}
	if bytes.Contains(bytes.ToLower(c.body), []byte(needle)) {
		return true
	}
	if bytes.IndexByte(c.body, '\\') < 0 {
		return false // no escapes: the decoded strings are the bytes just searched
	}
	found := false
	var walk func(v gjson.Result)
	walk = func(v gjson.Result) { // the parser bounded the depth (provider.MaxJSONDepth)
		v.ForEach(func(k, e gjson.Result) bool {
			found = strings.Contains(strings.ToLower(k.Str), needle) ||
				e.Type == gjson.String && strings.Contains(strings.ToLower(e.Str), needle)
			if !found && (e.IsObject() || e.IsArray()) {
				walk(e)
			}
			return !found
		})
	}
	walk(gjson.ParseBytes(c.body))
	return found
}

// markAccount records an upstream failure on the account, in the store that every node
// reads, and tells every node to drop its copy. An admin rule wins over the built-in reaction:
// it exists to keep a transient 401/403 from putting an account in the error state. The upstream's words are stored cleaned
// (provider.CleanText): short, no control characters, no credentials.
func (c *call) markAccount(acct *store.Account, f *provider.Failure, rule *store.ErrorRule) {
	g := c.g
	now := g.now()
	note := accountNote(acct, f)
	var m store.AccountMark
	switch {
	case rule != nil:
		until := now.Add(minutes(rule.Minutes))
		reason := fmt.Sprintf("rule %d: %s", rule.ID, note)
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
	case f.Mark.Kind == provider.MarkVerify:
		// The request waits for the call, then fails over. Requests refused meanwhile find
		// the account claimed and fail over without a call of their own.
		if !g.claimVerify(acct.ID, false) {
			return
		}
		defer g.endVerify(acct.ID)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx()), verifyTimeout)
		defer cancel()
		g.verify(ctx, c.prov, acct, note)
		return
	case f.Mark.Kind == provider.MarkError:
		status := store.StatusError
		m.Status, m.ErrorMessage = &status, &note
	default:
		return
	}
	g.recordMark(acct.ID, m)
}

// recordMark writes an account's mark to the store that every node reads.
func (g *Gateway) recordMark(id int64, m store.AccountMark) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := g.store.MarkAccount(ctx, id, m); err != nil {
		g.log.Error("marking an account failed", "account", id, "err", err)
		return
	}
	g.accounts.drop(nil) // this node at once; the others through the message below
	if err := invalidate.Publish(ctx, g.coord, invalidate.Account, id); err != nil {
		g.log.Warn("publishing an account mark failed; other nodes see it when their cache expires", "err", err)
	}
}

// unconfirmedPause is how long an account whose credentials were refused is skipped when
// the confirming call got no clear answer either way.
const unconfirmedPause = 5 * time.Minute

// verifyTimeout bounds the confirming call.
const verifyTimeout = 15 * time.Second

// markMidStream marks the account for an error event that came after the stream's first
// event. A refusal's confirming call runs in the background: the client's stream ends with
// the error event at once instead of waiting up to verifyTimeout for it.
func (c *call) markMidStream(acct *store.Account, f *provider.Failure) {
	c.g.accountErrs.add(c.start, acct.ID) // the account failed this request, though it was billed

	if f.Mark.Kind != provider.MarkVerify {
		c.markAccount(acct, f, nil)
		return
	}
	g, a, prov, note := c.g, *acct, c.prov, accountNote(acct, f) // copies: the request ends first
	if !g.claimVerify(a.ID, true) {
		return
	}
	go func() {
		defer g.bg.Done()
		defer g.endVerify(a.ID)
		// The gateway's context, not the request's: the request is over long before, and
		// Close cancels the call.
		ctx, cancel := context.WithTimeout(g.life, verifyTimeout)
		defer cancel()
		g.verify(ctx, prov, &a, note)
	}()
}

// claimVerify reserves the account's one confirming call on this node; false when one is
// in flight already, or the gateway is closing. A background call joins g.bg.
func (g *Gateway) claimVerify(id int64, background bool) bool {
	g.verifyMu.Lock()
	defer g.verifyMu.Unlock()
	if g.closing || g.verifying[id] {
		return false
	}
	g.verifying[id] = true
	if background {
		g.bg.Add(1) // under the lock, so never after Close began waiting
	}
	return true
}

func (g *Gateway) endVerify(id int64) {
	g.verifyMu.Lock()
	delete(g.verifying, id)
	g.verifyMu.Unlock()
}

// verify makes the confirming call and records its verdict.
func (g *Gateway) verify(ctx context.Context, prov provider.Provider, acct *store.Account, note string) {
	m, ok := g.confirmRefusal(ctx, prov, acct, note)
	if ok && g.life.Err() == nil { // a call cut short by Close says nothing about the account
		g.recordMark(acct.ID, m)
	}
}

// confirmRefusal asks the upstream, with one cheap call of the account's own (the model
// list: no tokens, no client headers), whether the credentials it just refused still work.
// Refused again (the provider reads the answer as a credentials refusal: Anthropic's
// 401/403, Gemini's 400 API_KEY_INVALID too): the error state, until an admin acts.
// Accepted: no mark, the refusal was about that one request. Neither: a pause, not the error
// state, since a single request must not take an account out for good. ok is false when
// nothing is to be recorded.
func (g *Gateway) confirmRefusal(ctx context.Context, prov provider.Provider, acct *store.Account, note string) (m store.AccountMark, ok bool) {
	status, refused, err := g.checkCredentials(ctx, prov, acct)
	switch {
	case err == nil && refused:
		st, msg := store.StatusError, clipText(note+" (confirmed by a second call)", maxNoteLen)
		m.Status, m.ErrorMessage = &st, &msg
		return m, true
	case err == nil && status >= 200 && status <= 299:
		g.log.InfoContext(ctx, "upstream refused an account's credentials for one request only; not marked",
			"account", acct.ID, "note", note)
		return m, false
	}
	check := fmt.Sprintf("confirming call answered %d", status)
	if err != nil {
		check = "confirming call failed: " + provider.CleanText(err.Error(), 200)
	}
	until := g.now().Add(unconfirmedPause)
	reason := clipText(note+"; "+check, maxNoteLen)
	m.TempUnschedUntil, m.TempUnschedReason = &until, &reason
	return m, true
}

// checkCredentials makes the confirming call and returns the upstream's status and whether
// the provider reads the answer as its credentials refused.
func (g *Gateway) checkCredentials(ctx context.Context, prov provider.Provider, acct *store.Account) (status int, refused bool, err error) {
	req, err := prov.NewUpstreamRequest(ctx, provider.OpModels, provider.Target{Account: acct}, provider.Inbound{Header: http.Header{}}, nil)
	if err != nil {
		return 0, false, fmt.Errorf("build the confirming call: %w", err)
	}
	rt, err := g.transportFor(ctx, acct)
	if err != nil {
		return 0, false, err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, false, fmt.Errorf("confirming call: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, errorBodyLimit)) // reuse the connection
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return resp.StatusCode, false, nil
	}
	f := prov.Classify(resp.StatusCode, resp.Header, body, g.now())
	return resp.StatusCode, f.Mark.Kind == provider.MarkVerify, nil
}

// maxNoteLen bounds the upstream text stored on an account.
const maxNoteLen = 500

// accountNote is what an account's state says about a failure: the status and the
// upstream's message, cleaned of control characters and credentials (the account's own
// included) and bounded.
func accountNote(acct *store.Account, f *provider.Failure) string {
	cr := acct.Credentials
	msg := provider.CleanText(f.Message, maxNoteLen, cr.APIKey, cr.AccessToken, cr.RefreshToken)
	if f.Status != 0 {
		msg = fmt.Sprintf("upstream %d: %s", f.Status, msg)
	}
	return clipText(msg, maxNoteLen)
}

// clipText cuts clean text to at most n bytes on a character boundary.
func clipText(s string, n int) string { return provider.CleanText(s, n) }

func minutes(n int) time.Duration { return time.Duration(n) * time.Minute }
