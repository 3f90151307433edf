package gateway

import (
	"cmp"
	"slices"
	"strconv"
	"time"

	"github.com/fluxcode/fluxcode/internal/coord"
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
// (whose accounts differ) and two groups' identical prompts never share an account.
func stickyKey(groupID int64, session string) string {
	return "group:" + strconv.FormatInt(groupID, 10) + ":" + session
}

// candidates returns the group's accounts that may serve this request now, best first (those
// that would serve a model without a price left out, see keepPriced), and keep: the accounts this request already tried that could still serve it. The session's
// bound account is put first by the coordinator (slots.go), in the same call that takes its
// slot, so that reading the binding costs no round trip of its own; keep tells it that a
// binding to an account left out only because this request tried it (a failure that leaves
// no mark, such as a network error) must not move.
func (c *call) candidates(tried map[int64]bool) (ranked []Candidate, keep []int64, err error) {
	accts, err := c.g.groupAccounts(c.ctx(), c.auth.Group.ID)
	if err != nil {
		return nil, nil, err
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
	ranked, err = c.keepServed(Rank(pool, c.prov.Platform(), c.req.Model, now, tried), accts, tried)
	if err != nil {
		return nil, nil, err
	}
	ranked, err = c.keepPriced(ranked, tried)
	if err != nil {
		return nil, nil, err
	}
	for id := range tried {
		if c.stillServes(accts, id, now) {
			keep = append(keep, id)
		}
	}
	return ranked, keep, nil
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

// session returns the request's sticky key and its lifetime; "" when the request carries
// nothing to stick on. Only generation sticks: a token count or a model list uses no cache
// upstream, so any account serves it as well.
func (c *call) session() (string, time.Duration) {
	if c.req.Session == "" || c.op != provider.OpMessages {
		return "", 0
	}
	if c.req.Continues {
		return stickyKey(c.auth.Group.ID, c.req.Session), c.g.cfg.AnswerTTL
	}
	return stickyKey(c.auth.Group.ID, c.req.Session), c.g.cfg.StickyTTL
}

// answerBinding is the binding of the session of a later request continuing this answer
// (provider.Continuations) to the account that gave it: the upstream keeps the answer with
// that account alone. It is made with the slots' release, before the answer's end reaches
// the client, so that the client's next request, on any node, finds it. Zero for an answer
// nothing continues.
func (c *call) answerBinding(res *result) coord.Binding {
	if res.answerSession == "" {
		return coord.Binding{}
	}
	return coord.Binding{Key: stickyKey(c.auth.Group.ID, res.answerSession), AccountID: res.account.ID,
		TTL: c.g.cfg.AnswerTTL}
}
