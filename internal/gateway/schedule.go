package gateway

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/fluxcode/fluxcode/internal/provider"
	"github.com/fluxcode/fluxcode/internal/store"
)

// Candidate is one account as the ranking sees it: the account, this node's view of its load
// and when it was last used. Load is per node on purpose: it only orders candidates, while the
// cluster-wide slot acquire decides whether one may be used.
type Candidate struct {
	Account  *store.Account
	InFlight int       // this node's requests holding a slot of the account
	LastUsed time.Time // the later of the stored and this node's last use; zero = never
	// Model is the upstream model for the request, set by Rank from the account's mapping.
	Model string
}

// Rank returns the candidates that may serve model at now, best first: accounts that are
// available (active, schedulable, no health mark in force), of the platform, not excluded
// and allowing the model; ordered by priority (lower first), then load (in flight / limit),
// then least recently used, then id. It is a pure function of its arguments.
func Rank(pool []Candidate, platform, model string, now time.Time, exclude map[int64]bool) []Candidate {
	out := make([]Candidate, 0, len(pool))
	for _, c := range pool {
		a := c.Account
		if a.Platform != platform || exclude[a.ID] || !a.Available(now) {
			continue
		}
		upstream, ok := MapModel(a, model)
		if !ok {
			continue
		}
		c.Model = upstream
		out = append(out, c)
	}
	slices.SortStableFunc(out, func(x, y Candidate) int {
		if d := cmp.Compare(x.Account.Priority, y.Account.Priority); d != 0 {
			return d
		}
		if d := compareLoad(x, y); d != 0 {
			return d
		}
		if d := x.LastUsed.Compare(y.LastUsed); d != 0 {
			return d
		}
		return cmp.Compare(x.Account.ID, y.Account.ID)
	})
	return out
}

// unlimitedSlots stands for the limit of an account without one when comparing loads: such
// an account is never full but is still less attractive the more it carries.
const unlimitedSlots = 1 << 20

// compareLoad orders by InFlight/limit without division: x/a < y/b ⇔ x·b < y·a.
func compareLoad(x, y Candidate) int {
	limit := func(c Candidate) int64 {
		if c.Account.Concurrency <= 0 {
			return unlimitedSlots
		}
		return int64(c.Account.Concurrency)
	}
	return cmp.Compare(int64(x.InFlight)*limit(y), int64(y.InFlight)*limit(x))
}

// MapModel returns the upstream model for model on account a, and whether a serves it at all.
// An account without a mapping serves every model under its own name; with a mapping, only
// the models it names (an empty target keeps the name).
func MapModel(a *store.Account, model string) (string, bool) {
	if len(a.ModelMapping) == 0 {
		return model, true
	}
	to, ok := a.ModelMapping[model]
	if !ok {
		return "", false
	}
	if to == "" {
		return model, true
	}
	return to, true
}

// stickyKey scopes a session to the key's group: a binding never leaks into another group
// (whose accounts differ) and two groups' identical prompts never share an account (the
// older implementation's 7.2 #6).
func stickyKey(groupID int64, session string) string {
	return "group:" + strconv.FormatInt(groupID, 10) + ":" + session
}

// stickyState is what a request learned about its session binding.
type stickyState struct {
	key     string // "" when the request has nothing to stick on
	account int64  // the bound account, 0 for none
	looked  bool
	broken  bool // the bound account cannot serve any more: rebind to whoever serves
}

// lookupSticky reads the binding once per request. A coordination error only costs the
// stickiness of this request.
func (c *call) lookupSticky() {
	s := &c.sticky
	if s.looked {
		return
	}
	s.looked = true
	if c.req.Session == "" || c.op == provider.OpModels {
		return
	}
	s.key = stickyKey(c.auth.Group.ID, c.req.Session)
	id, err := c.g.coord.StickyGet(c.ctx(), s.key)
	if err != nil {
		if c.ctx().Err() == nil {
			c.g.log.WarnContext(c.ctx(), "sticky lookup failed", "err", err)
		}
		s.key = ""
		return
	}
	s.account = id
}

// candidates returns the group's accounts that may serve this request now, best first, with
// the session's account in front when it can serve. An unusable bound account is dropped
// from the binding; a merely busy one stays bound (its slot is checked by acquire).
func (c *call) candidates(tried map[int64]bool) ([]Candidate, error) {
	accts, err := c.g.groupAccounts(c.ctx(), c.auth.Group.ID)
	if err != nil {
		return nil, err
	}
	now := c.g.now()
	pool := make([]Candidate, len(accts))
	for i := range accts {
		a := &accts[i]
		inFlight, lastUsed := c.g.slots.load(a.ID)
		if a.LastUsedAt != nil && a.LastUsedAt.After(lastUsed) {
			lastUsed = *a.LastUsedAt
		}
		pool[i] = Candidate{Account: a, InFlight: inFlight, LastUsed: lastUsed}
	}
	ranked := Rank(pool, c.prov.Platform(), c.req.Model, now, tried)

	c.lookupSticky()
	s := &c.sticky
	if s.account == 0 || s.broken {
		return ranked, nil
	}
	if i := slices.IndexFunc(ranked, func(x Candidate) bool { return x.Account.ID == s.account }); i >= 0 {
		bound := ranked[i]
		copy(ranked[1:i+1], ranked[:i])
		ranked[0] = bound
		return ranked, nil
	}
	if !tried[s.account] || !c.stillServes(accts, s.account, now) {
		s.broken = true
		c.dropSticky()
	}
	return ranked, nil
}

// stillServes reports whether account id of the snapshot could serve this request at now.
func (c *call) stillServes(accts []store.Account, id int64, now time.Time) bool {
	for i := range accts {
		if a := &accts[i]; a.ID == id {
			_, ok := MapModel(a, c.req.Model)
			return ok && a.Available(now) && a.Platform == c.prov.Platform()
		}
	}
	return false
}

func (c *call) dropSticky() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx()), storeTimeout)
	defer cancel()
	if err := c.g.coord.StickyDelete(ctx, c.sticky.key, c.sticky.account); err != nil {
		c.g.log.WarnContext(ctx, "sticky delete failed", "err", err)
	}
}

// bindSticky records that account served the session: a new binding when there was none or
// the bound account can no longer serve, a refreshed TTL when it was the bound account. A
// request that only bypassed a busy bound account leaves the binding alone.
func (c *call) bindSticky(account int64) {
	s := &c.sticky
	if s.key == "" || c.op != provider.OpMessages {
		return
	}
	if s.account != 0 && s.account != account && !s.broken {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx()), storeTimeout)
	defer cancel()
	if err := c.g.coord.StickySet(ctx, s.key, account, c.g.cfg.StickyTTL); err != nil {
		c.g.log.WarnContext(ctx, "sticky bind failed", "err", err)
		return
	}
	s.account, s.broken = account, false
}
