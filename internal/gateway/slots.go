package gateway

import (
	"context"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
	"github.com/fluxcode/fluxcode/internal/provider"
)

// storeTimeout bounds bookkeeping calls (release, marks, sticky writes) made on a context
// detached from the client, so a departed client cannot leave them undone.
const storeTimeout = 5 * time.Second

// Slot set names. One AcquireSlots call takes a user's, a key's and an account's slot
// together, so a request never holds a user slot while it waits for an account.
func userSlot(id int64) string    { return "slot:user:" + strconv.FormatInt(id, 10) }
func keySlot(id int64) string     { return "slot:key:" + strconv.FormatInt(id, 10) }
func accountSlot(id int64) string { return "slot:account:" + strconv.FormatInt(id, 10) }
func userQueue(id int64) string   { return "wait:user:" + strconv.FormatInt(id, 10) }
func keyQueue(id int64) string    { return "wait:key:" + strconv.FormatInt(id, 10) }

// AccountSlotKey, UserSlotKey and KeySlotKey name the slot sets the gateway takes, for tools
// and tests that watch them (coord.Slots.SlotCount).
func AccountSlotKey(id int64) string { return accountSlot(id) }
func UserSlotKey(id int64) string    { return userSlot(id) }
func KeySlotKey(id int64) string     { return keySlot(id) }

// slotBook is this node's record of the slots it holds: the heartbeat refreshes them all in
// one call, the ranking reads the per-account counts, and local waiters are woken when one
// is released.
type slotBook struct {
	mu       sync.Mutex
	held     map[string]map[string]struct{} // holder → slot keys
	inFlight map[int64]int
	lastUsed map[int64]time.Time
	freed    chan struct{} // closed (and replaced) whenever a slot is released
	// unreleased are slots given up whose release failed (the coordinator was down): no
	// longer refreshed, and released again by the heartbeat until the coordinator takes it,
	// so that they do not keep an account full until their lease expires.
	unreleased map[string][]string // holder → slot keys
	// epoch is the coordinator's epoch under which every held slot is registered ("" before
	// the first heartbeat). A grant under another one wakes the heartbeat through stale.
	epoch string
	stale chan struct{}
	// registering is set while the heartbeat registers every held slot (beginRegistration):
	// a grant that arrives meanwhile is not recorded (admit), so no registration can miss one.
	registering bool
	// regSeq counts the registrations begun. A release that overlaps one may reach the
	// coordinator before the registration does, which then registers the released slot again
	// (live or not, under a new epoch): again holds such releases for the heartbeat to send
	// once more when the registration is done (releaseMark, removeAfter).
	regSeq int
	again  map[string][]string // holder → slot keys
}

func newSlotBook() *slotBook {
	return &slotBook{held: make(map[string]map[string]struct{}), inFlight: make(map[int64]int),
		lastUsed: make(map[int64]time.Time), freed: make(chan struct{}), unreleased: make(map[string][]string),
		stale: make(chan struct{}, 1), again: make(map[string][]string)}
}

// knownEpoch is the epoch every held slot is registered under.
func (b *slotBook) knownEpoch() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.epoch
}

// seen notes an epoch a grant was made under: when it is not the book's, the heartbeat must
// register every slot again at once (the coordinator lost its state, or this node's
// heartbeat fell behind).
func (b *slotBook) seen(epoch string) {
	if epoch == b.knownEpoch() {
		return
	}
	select {
	case b.stale <- struct{}{}:
	default:
	}
}

// failedRelease records slots whose release must be tried again.
func (b *slotBook) failedRelease(holder string, keys []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unreleased[holder] = appendMissing(b.unreleased[holder], keys)
}

// pendingReleases returns a copy of the slots whose release failed.
func (b *slotBook) pendingReleases() map[string][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.unreleased) == 0 {
		return nil
	}
	out := make(map[string][]string, len(b.unreleased))
	for h, keys := range b.unreleased {
		out[h] = slices.Clone(keys)
	}
	return out
}

// releasedLate records that a retried release went through, and wakes local waiters: the slots
// are free now.
func (b *slotBook) releasedLate(holder string, keys []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	left := slices.DeleteFunc(b.unreleased[holder], func(k string) bool { return slices.Contains(keys, k) })
	if len(left) == 0 {
		delete(b.unreleased, holder)
	} else {
		b.unreleased[holder] = left
	}
	close(b.freed)
	b.freed = make(chan struct{})
}

func (b *slotBook) add(holder string, keys []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.held[holder]
	if m == nil {
		m = make(map[string]struct{}, len(keys))
		b.held[holder] = m
	}
	for _, k := range keys {
		m[k] = struct{}{}
	}
}

// releaseMark is taken just before a release is sent: which registrations it may overlap.
func (b *slotBook) releaseMark() (seq int, registering bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.regSeq, b.registering
}

// removeAfter forgets holder's keys once their release (marked by releaseMark) is done, and
// reports whether the caller must send the release once more now: a registration overlapped
// it and has already ended, so it may have registered the slots again after the release
// reached the coordinator. A registration still under way takes the release into again, and
// the heartbeat sends it after the registration.
func (b *slotBook) removeAfter(holder string, keys []string, seq int, wasRegistering bool) (resend bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	overlapped := wasRegistering || b.regSeq != seq || b.registering
	toHeartbeat := overlapped && b.registering
	if toHeartbeat {
		b.again[holder] = appendMissing(b.again[holder], keys)
	}
	b.removeLocked(holder, keys)
	return overlapped && !toHeartbeat
}

// removeLocked forgets holder's keys and wakes local waiters; b.mu is held.
func (b *slotBook) removeLocked(holder string, keys []string) {
	if m := b.held[holder]; m != nil {
		for _, k := range keys {
			delete(m, k)
		}
		if len(m) == 0 {
			delete(b.held, holder)
		}
	}
	close(b.freed)
	b.freed = make(chan struct{})
}

// beginRegistration returns every held slot and refuses grants until endRegistration.
func (b *slotBook) beginRegistration() []coord.Held {
	b.mu.Lock()
	b.registering = true
	b.regSeq++
	b.mu.Unlock()
	return b.all()
}

// endRegistration accepts grants again, under epoch when it is not "", and returns the
// releases that overlapped the registration: they must be sent once more.
func (b *slotBook) endRegistration(epoch string) map[string][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.registering = false
	if epoch != "" {
		b.epoch = epoch
	}
	again := b.again
	b.again = make(map[string][]string)
	return again
}

// admit records the slots of a grant made under epoch, and reports true, when they are
// registered under the book's epoch and no registration is under way. Otherwise the grant
// may come from a state that was lost (a grant whose answer was on its way while the state
// vanished and the heartbeat registered this node's slots again without it): its request
// must not run on it, or the upstream could see more than a limit.
func (b *slotBook) admit(epoch, holder string, keys []string) bool {
	b.mu.Lock()
	refused := b.registering || (b.epoch != "" && epoch != b.epoch)
	b.mu.Unlock()
	if refused {
		return false
	}
	b.add(holder, keys)
	return true
}

func (b *slotBook) all() []coord.Held {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []coord.Held
	for holder, keys := range b.held {
		for k := range keys {
			out = append(out, coord.Held{Key: k, Holder: holder})
		}
	}
	return out
}

// released returns a channel closed at the next local release.
func (b *slotBook) released() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.freed
}

func (b *slotBook) load(account int64) (int, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inFlight[account], b.lastUsed[account]
}

func (b *slotBook) use(account int64, delta int, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inFlight[account] += delta
	if b.inFlight[account] <= 0 {
		delete(b.inFlight, account)
	}
	if delta > 0 {
		b.lastUsed[account] = now
	}
}

// releaseRetryInterval is how often releases that failed are tried again (at most; the
// heartbeat's own period when that is shorter). Each slot it frees sooner than its lease
// would is an account slot back in use.
const releaseRetryInterval = time.Second

// heartbeat keeps this node's slots registered. Every coord.EpochPollInterval it polls the
// coordinator's epoch; every SlotTTL/3 it refreshes every slot instead (the same answer), so
// slots live while their requests run and expire within SlotTTL after a crash (invariant 2).
// When the epoch changed (Redis lost its data, or failed over to a replica that lacked the
// latest writes), or the refreshes failed for so long that slots may have expired, it
// registers every slot again at once: after a loss the coordinator admits nothing new until
// every node it expects has done so (coord.RecoveryWindow). Between beats it retries the
// releases that failed while the coordinator was down.
func (g *Gateway) heartbeat(ctx context.Context) {
	t := time.NewTicker(coord.EpochPollInterval)
	defer t.Stop()
	retry := time.NewTicker(min(releaseRetryInterval, g.cfg.SlotTTL/3))
	defer retry.Stop()
	var lastRefresh time.Time // of every slot, under the book's epoch
	failing := false
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
			g.retryReleases(ctx)
			continue
		case <-g.slots.stale:
			forced = true
		case <-t.C:
		}
		now := g.now()
		prev := g.slots.knownEpoch()
		known := prev
		if forced || now.Sub(lastRefresh) > g.cfg.SlotTTL/2 {
			known = "" // slots may be missing: register them all again
		}
		full := known == "" || now.Sub(lastRefresh) >= g.cfg.SlotTTL/3
		var cur string
		var err error
		if !full {
			cur, err = g.coord.PollEpoch(ctx)
			full = err == nil && cur != known // a new epoch: the coordinator lost its state
		}
		var held []coord.Held
		if full {
			// The coordinator counts this call as the node's registration when the epoch is
			// not known's: held must then be complete.
			held = g.slots.beginRegistration()
			cur, err = g.coord.RefreshSlots(ctx, g.cfg.SlotTTL, known, held)
			for holder, keys := range g.slots.endRegistration(cur) {
				g.releaseAgain(holder, keys)
			}
		}
		if err != nil {
			if ctx.Err() == nil && !failing {
				g.log.Warn("slot heartbeat failed", "slots", len(held), "err", err)
			}
			failing = true
			continue
		}
		failing = false
		if full {
			lastRefresh = now
		}
		if cur != prev && prev != "" {
			g.log.Warn("coordination state lost: registered this node's slots again", "slots", len(held))
		}
	}
}

// retryReleases tries the failed releases again, stopping at the first failure (the
// coordinator is still down).
func (g *Gateway) retryReleases(ctx context.Context) {
	pending := g.slots.pendingReleases()
	for holder, keys := range pending {
		cctx, cancel := context.WithTimeout(ctx, storeTimeout)
		err := g.coord.ReleaseSlots(cctx, holder, keys...)
		cancel()
		if err != nil {
			return
		}
		g.slots.releasedLate(holder, keys)
	}
	if len(pending) > 0 {
		g.log.Info("released slots whose release had failed", "holders", len(pending))
	}
}

// releaseSlots gives back slots of holder. It runs detached from the client: a departed
// client must not leave its slots to the TTL. A release that fails is retried by the
// heartbeat.
func (g *Gateway) releaseSlots(holder string, keys []string) {
	g.releaseAndBind(holder, keys, coord.Binding{})
}

// releaseAndBind gives back slots of holder and makes bind (when its Key is set) in the same
// coordinator call. A failed release is retried by the heartbeat; a failed binding is not:
// it only loses a later request its account (see answerBinding).
func (g *Gateway) releaseAndBind(holder string, keys []string, bind coord.Binding) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	seq, registering := g.slots.releaseMark()
	err := g.coord.ReleaseAndBind(ctx, holder, keys, bind)
	if g.slots.removeAfter(holder, keys, seq, registering) && err == nil {
		g.releaseAgain(holder, keys)
	}
	if err != nil {
		if bind.Key != "" {
			g.log.Warn("binding an answer to its account failed; a request continuing it may go to another",
				"account", bind.AccountID, "err", err)
		}
		if len(keys) > 0 {
			g.log.Warn("slot release failed; retrying until the coordinator answers", "err", err)
			g.slots.failedRelease(holder, keys)
		}
	}
}

// releaseAgain sends a release that a registration of this node's slots may have undone; a
// failure leaves it to the heartbeat's retries.
func (g *Gateway) releaseAgain(holder string, keys []string) {
	if len(keys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := g.coord.ReleaseSlots(ctx, holder, keys...); err != nil {
		g.slots.failedRelease(holder, keys)
	}
}

// lease is an account chosen for one attempt, with its slot when the request takes slots.
type lease struct {
	cand Candidate
	key  string // the account's slot key; "" when it has no limit or none was taken
}

// needsSlots: only billed generation counts against concurrency limits. A token count or a
// model list is short and cheap, and must not queue behind long streams.
func (c *call) needsSlots() bool { return c.op == provider.OpMessages }

// tryAcquire takes, in one coordinator call (one Redis round trip), the user's and key's
// slots with the slot of the first candidate that has room, the session's bound account
// first; the same call binds the session or refreshes its binding (coord.Scheduler has the
// rules). It returns a nil lease when no account has room or the user's or key's own limit
// is full, and with it the time left in the coordinator's recovery window when that is
// what kept it from granting.
func (c *call) tryAcquire(cands []Candidate, keep []int64) (*lease, time.Duration, error) {
	a := c.auth
	req := coord.AccountReq{Base: make([]coord.SlotReq, 0, 2), Accounts: make([]coord.AccountSlot, len(cands)), Keep: keep}
	if a.User.Concurrency > 0 {
		req.Base = append(req.Base, coord.SlotReq{Key: userSlot(a.User.ID), Limit: a.User.Concurrency})
	}
	if a.Key.Concurrency > 0 {
		req.Base = append(req.Base, coord.SlotReq{Key: keySlot(a.Key.ID), Limit: a.Key.Concurrency})
	}
	for i, cand := range cands {
		acct := cand.Account
		req.Accounts[i] = coord.AccountSlot{ID: acct.ID}
		if acct.Concurrency > 0 {
			req.Accounts[i].Slot = coord.SlotReq{Key: accountSlot(acct.ID), Limit: acct.Concurrency}
		}
	}
	req.Session, req.SessionTTL = c.session()
	grant, err := c.g.coord.AcquireAccount(c.ctx(), c.id, c.g.cfg.SlotTTL, req)
	if err != nil {
		return nil, 0, err
	}
	c.g.slots.seen(grant.Epoch)
	if grant.Index < 0 {
		return nil, grant.Recovering, nil
	}
	l := &lease{cand: cands[grant.Index], key: req.Accounts[grant.Index].Slot.Key}
	keys := slotKeys(req.Base)
	if l.key != "" {
		keys = append(keys, l.key)
	}
	if !c.g.slots.admit(grant.Epoch, c.id, keys) {
		// Given back unused: the request asks again in a moment.
		c.g.releaseSlots(c.id, keys)
		c.held = slices.DeleteFunc(c.held, func(k string) bool { return slices.Contains(keys, k) })
		return nil, time.Millisecond, nil
	}
	c.held = appendMissing(c.held, keys)
	c.g.slots.use(l.cand.Account.ID, 1, c.g.now())
	return l, 0, nil
}

// waitRecovery waits while the coordinator's recovery window is open (d at most is left)
// before the request tries again: the nodes are registering their requests in flight, and a
// request admitted now could exceed a limit. The window may close any moment once they have,
// so it asks again within coord.EpochPollInterval. It returns false, the outcome set, when
// the client left.
func (c *call) waitRecovery(d time.Duration) bool {
	d = min(d, coord.EpochPollInterval)
	return c.pause(d+rand.N(d/4+time.Millisecond), nil) // jittered: spread the retries
}

// pause sleeps for d or until wake is closed. It returns false, the outcome set, when the
// client left.
func (c *call) pause(d time.Duration, wake <-chan struct{}) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-c.ctx().Done():
		c.gone.Store(true)
		c.outcome = outcomeClientGone
		return false
	case <-wake:
	case <-timer.C:
	}
	return true
}

// release ends one attempt. A failed attempt gives its account slot back at once, so that
// others may use the account while this request tries another; a delivered one keeps it
// until finish gives it back with the user's and key's, in one call (issue 5: the hot path
// costs Redis one acquire and one release).
func (c *call) release(l *lease, failed bool) {
	if !c.needsSlots() {
		return
	}
	c.g.slots.use(l.cand.Account.ID, -1, c.g.now())
	if failed && l.key != "" {
		c.g.releaseSlots(c.id, []string{l.key})
		c.held = slices.DeleteFunc(c.held, func(k string) bool { return k == l.key })
	}
}

func slotKeys(reqs []coord.SlotReq) []string {
	keys := make([]string, len(reqs))
	for i, r := range reqs {
		keys[i] = r.Key
	}
	return keys
}

// appendMissing appends the keys dst does not have yet.
func appendMissing(dst, keys []string) []string {
	for _, k := range keys {
		if !slices.Contains(dst, k) {
			dst = append(dst, k)
		}
	}
	return dst
}

// coordFailed answers when the coordination backend cannot be reached: no slot can be
// checked, so nothing is admitted (limits hold cluster-wide, invariant 2): 503
// overloaded_error, X-Fluxcode-Reject: coordination, x-should-retry: true — a retry a
// moment later may well succeed. A call that failed because the client left is no backend
// failure.
func (c *call) coordFailed(err error) {
	if c.ctx().Err() != nil {
		c.gone.Store(true)
		c.outcome = outcomeClientGone
		return
	}
	c.g.log.ErrorContext(c.ctx(), "coordination backend failed", "err", err)
	c.reject(RejectCoordination, provider.KindOverloaded, http.StatusServiceUnavailable,
		"the gateway cannot check concurrency limits right now; retry shortly", retryShortly)
}
