// Package coord declares what FluxCode nodes must agree on while they run: concurrency slots,
// leases for background jobs, sticky session bindings, counters and cache invalidation.
//
// Two implementations keep the same contract: coord/memory for a single node and coord/redis
// for a cluster (standalone Redis, Sentinel or Cluster). The suite in coord/coordtest runs
// against both. Every method takes a context and returns promptly with an error when the
// backend cannot be reached (implementations bound each call); callers fail fast on error.
package coord

import (
	"context"
	"errors"
	"time"
)

// ErrUnavailable wraps backend failures (Redis down, timeout): nothing was changed, or the
// change is unknown and will expire on its own through TTLs.
var ErrUnavailable = errors.New("coordination backend unavailable")

// Coordinator bundles every coordination service one node uses.
type Coordinator interface {
	Slots
	Scheduler
	Leases
	Sticky
	Counters
	PubSub
	Janitor
	// Ping answers nil when the backend is reachable.
	Ping(ctx context.Context) error
	Close() error
}

// SlotReq asks for one slot in the set Key of at most Limit holders. Limit <= 0 means
// unlimited: the request always succeeds and nothing is stored.
type SlotReq struct {
	Key   string
	Limit int
}

// RecoveryWindow bounds how long AcquireAccount grants nothing after the backend lost its
// state (a Redis restart without its data, a failover to a replica that lacked the latest
// writes, memory.Reset): while it is open, every node that may have requests in flight
// registers their slots again (RefreshSlots), so that when admissions resume the sets count
// every request still running upstream (invariant 2). The window closes early, but never
// before MinRecoveryWindow, once every node the backend has reason to expect has done so
// (each implementation says how it knows); RecoveryWindow is the fallback when one of them
// does not come back (crashed, cut off), and the only bound on how long a node may take.
const RecoveryWindow = 2 * time.Second

// MinRecoveryWindow is the shortest recovery window: every running node polls the epoch
// (PollEpoch) several times within it, so a node that nobody expected (one that started
// moments before the loss) still shows up before admissions resume.
const MinRecoveryWindow = 75 * time.Millisecond

// EpochPollInterval is how often a node that holds slots asks for the epoch (PollEpoch):
// after a loss it notices within this and registers its slots again at once.
const EpochPollInterval = 25 * time.Millisecond

// Slots are counted concurrency slots held as leases. A holder is a unique token per
// request. A slot expires TTL after it was taken or last refreshed, so a crashed node's slots
// free themselves; a live node refreshes what it holds well before that.
//
// The backend's state lives in an epoch: an opaque string that changes whenever the state
// was lost (a backend may also begin a new epoch when it cannot tell, e.g. Redis unreached by
// any node for RecoveryWindow). A new epoch begins with a recovery window (RecoveryWindow).
// A node that holds slots polls the epoch (PollEpoch) and, on a change, registers every slot
// it holds again with one RefreshSlots call; that call is also how the backend learns that
// the node has re-registered, so it must name every slot the node holds.
type Slots interface {
	// AcquireSlots takes one slot in every requested set for holder, atomically: either all
	// are taken, or none is and full is the index of the first set that was full.
	// Expired holders are purged before counting. Taking a slot the holder already has in a
	// set succeeds without counting it twice. It ignores the recovery window: it serves wait
	// queues, which bound waiting, not upstream load.
	AcquireSlots(ctx context.Context, holder string, ttl time.Duration, reqs ...SlotReq) (ok bool, full int, err error)
	// ReleaseSlots removes holder from each set. Missing entries are ignored.
	ReleaseSlots(ctx context.Context, holder string, keys ...string) error
	// RefreshSlots returns the backend's current epoch (beginning one, with its recovery
	// window, when the state is gone) and extends the expiry of each (key, holder) pair that
	// is still live. When epoch is not the current one (the state was lost since the
	// caller's last refresh; "" forces it) every pair is registered again to expire after
	// ttl, live or not: the caller vouches that their requests still run, and that held is
	// every slot it holds, for from then on it counts as re-registered under the current
	// epoch (which may close the recovery window).
	RefreshSlots(ctx context.Context, ttl time.Duration, epoch string, held []Held) (string, error)
	// PollEpoch returns the backend's current epoch, beginning one (with its recovery
	// window) when the state is gone. It registers nothing and is cheap: nodes call it every
	// EpochPollInterval, and a backend may use the calls to learn which nodes it must expect
	// to re-register after a loss.
	PollEpoch(ctx context.Context) (string, error)
	// SlotCount counts the live holders of a set.
	SlotCount(ctx context.Context, key string) (int, error)
}

// Scheduler takes everything one request needs to use an account in a single atomic step,
// so that a relayed request costs the backend one call to start (and one ReleaseAndBind to end)
// however many limits and bindings are involved: the session binding is read, an account is
// chosen among candidates ranked by the caller, the slots are taken and the binding is set or
// refreshed, all at once (one round trip on Redis; issue 5).
type Scheduler interface {
	// AcquireAccount, atomically:
	//   - reads the binding of req.Session (none when Session is "") and reports it as Bound;
	//   - when a set of req.Base is full (holder not already in it), takes nothing and
	//     answers BaseFull = its index: no account would help;
	//   - otherwise tries the bound account first when it is among req.Accounts, then the
	//     accounts in their order, and grants the first with room (the holder already in its
	//     set, fewer live holders than its Limit, or a Limit <= 0); with none, it takes
	//     nothing and answers Index = -1, BaseFull = -1;
	//   - on a grant, takes a slot for holder in every Base set and in the account's set, as
	//     AcquireSlots would (expiring after ttl unless refreshed), and updates the binding:
	//     refreshed to req.SessionTTL when the bound account was granted; set to the granted
	//     account when there was no binding, or the bound account is neither among Accounts
	//     nor in req.Keep (it can no longer serve: rebound); left alone when the bound account
	//     is among Accounts but full (bypassed for this request only) or is in Keep.
	// While the epoch's recovery window is open it takes nothing, reads no binding and
	// answers Recovering, the most it may stay open (it may close sooner: ask again within
	// EpochPollInterval). ttl, and SessionTTL when Session is set, must be
	// positive. A failed call may or may not have taken the slots; they expire after ttl.
	AcquireAccount(ctx context.Context, holder string, ttl time.Duration, req AccountReq) (AccountGrant, error)
	// ReleaseAndBind ends a request in one call: holder leaves each set of keys, as
	// ReleaseSlots, and when bind.Key is not "" the key is bound to bind.AccountID for
	// bind.TTL (positive), as StickySet — an answer the upstream keeps with one account
	// costs no round trip of its own. A failed call may have done either part, or none.
	ReleaseAndBind(ctx context.Context, holder string, keys []string, bind Binding) error
}

// Binding is a sticky binding made by ReleaseAndBind.
type Binding struct {
	Key       string // "" for none
	AccountID int64
	TTL       time.Duration
}

// AccountReq is what one request asks AcquireAccount for.
type AccountReq struct {
	// Base are the sets taken whichever account is granted (a user's, a key's).
	Base []SlotReq
	// Accounts are the candidates, best first.
	Accounts []AccountSlot
	// Session is the sticky key of the request's conversation; "" for none.
	Session string
	// SessionTTL is how long a binding set or refreshed by this call lasts.
	SessionTTL time.Duration
	// Keep lists accounts left out of Accounts that still serve the session (a request that
	// failed over from its bound account for a reason that does not mark it): a binding to
	// one of them stays.
	Keep []int64
}

// AccountSlot is one candidate account and its slot set. A Slot.Limit <= 0 is never full
// and stores nothing.
type AccountSlot struct {
	ID   int64
	Slot SlotReq
}

// AccountGrant is AcquireAccount's answer.
type AccountGrant struct {
	// Index is the granted account's position in Accounts, -1 when none was granted.
	Index int
	// BaseFull is the position in Base of the first full set, -1 when none was full.
	BaseFull int
	// Bound is the account the session was bound to when the call began, 0 for none.
	Bound int64
	// Epoch is the backend's epoch (see Slots): a caller that knew another one must
	// register its slots again (RefreshSlots).
	Epoch string
	// Recovering > 0 says the epoch's recovery window is open, for at most that long still:
	// nothing was taken, Index and BaseFull are -1.
	Recovering time.Duration
}

// Held names one slot a holder has.
type Held struct {
	Key    string
	Holder string
}

// Leases give one owner at a time a named lease, for background jobs that must run once per
// cluster. The fencing token grows with every new grant of the same name, so writes guarded by
// it can refuse a stale owner.
type Leases interface {
	// AcquireLease grants name to owner for ttl when it is free or expired, or extends it when
	// owner already holds it. ok=false when another owner holds it.
	AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (ok bool, fence int64, err error)
	// ReleaseLease frees name when owner holds it; otherwise nothing happens.
	ReleaseLease(ctx context.Context, name, owner string) error
}

// Janitor removes what the backend would otherwise keep for ever. Everything else it holds
// expires on its own: slots with their holders, sticky bindings (a deleted account's
// included) with the session TTL, counters and rate windows with their window, a dead node's
// membership when any live node next polls. What remains is a lease's fencing token, kept
// after the lease is released so that the next grant gets a larger one: one per lease name
// ever used, and some names are per account (a login's refresh lock).
type Janitor interface {
	// SweepLeases forgets the fencing token of every lease that is free and whose token is
	// older than idle (a token is at least the backend's clock in ms when granted), and
	// returns how many it forgot. A later grant of such a name still gets a larger token,
	// for a new token never falls below the backend's clock.
	SweepLeases(ctx context.Context, idle time.Duration) (int, error)
}

// Sticky maps a session key to an account id for a while.
type Sticky interface {
	// StickyGet returns 0, nil when the key has no binding.
	StickyGet(ctx context.Context, key string) (int64, error)
	// StickySet binds key to accountID for ttl, replacing any binding.
	StickySet(ctx context.Context, key string, accountID int64, ttl time.Duration) error
	// StickyDelete removes the binding if it is still accountID.
	StickyDelete(ctx context.Context, key string, accountID int64) error
}

// Counters are integers that expire, for rate windows and login throttles.
type Counters interface {
	// Incr adds delta to key and returns the new value. The key expires ttl after it was
	// first created (a fixed window); ttl <= 0 keeps the current expiry.
	Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error)
	// Get returns 0 for a missing or expired key.
	Get(ctx context.Context, key string) (int64, error)
	// TakeRate admits one request against every window of reqs atomically (one Redis
	// script, like AcquireSlots): when each window has room for its Cost (the counter plus
	// Cost stays within Limit; a Cost of 0 needs the counter below Limit), every counter is
	// increased by its Cost and ok is true; otherwise nothing changes, and wait is how long
	// until the first full window ends. A window is fixed: it starts with its counter's
	// first increase and lasts Window. A Limit <= 0 is not checked, only counted: that is how
	// a cost known only later (the tokens an answer used) is added to its window. Rate
	// windows are their own key space, apart from Incr's counters.
	TakeRate(ctx context.Context, reqs ...RateReq) (ok bool, wait time.Duration, err error)
}

// RateReq is one rate window TakeRate checks: the counter Key, at most Limit per Window,
// and the Cost this request adds to it.
type RateReq struct {
	Key string
	// Scope places the window: the windows of one TakeRate call must share it, and a Key
	// must always come with the same Scope. On Redis Cluster one scope lives on one shard
	// and different scopes spread over the shards, so it should be the narrowest thing the
	// windows of a call have in common (the user whose key and own windows are checked
	// together). "" is a scope too.
	Scope  string
	Limit  int64
	Cost   int64
	Window time.Duration
}

// PubSub carries small invalidation messages between nodes. Delivery is at most once: a node
// that was disconnected may miss messages, so Subscribe reports reconnections on the
// returned channel as the empty message "", after which the subscriber must drop what it
// caches.
type PubSub interface {
	Publish(ctx context.Context, channel, msg string) error
	// Subscribe delivers messages published on channel after it returns, until ctx ends.
	Subscribe(ctx context.Context, channel string) (<-chan string, error)
}
