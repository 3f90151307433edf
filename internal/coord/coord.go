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
	Leases
	Sticky
	Counters
	PubSub
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

// Slots are counted concurrency slots held as leases. A holder is a unique token per
// request. A slot expires TTL after it was taken or last refreshed, so a crashed node's slots
// free themselves; a live node refreshes what it holds well before that.
type Slots interface {
	// AcquireSlots takes one slot in every requested set for holder, atomically: either all
	// are taken, or none is and full is the index of the first set that was full.
	// Expired holders are purged before counting. Taking a slot the holder already has in a
	// set succeeds without counting it twice.
	AcquireSlots(ctx context.Context, holder string, ttl time.Duration, reqs ...SlotReq) (ok bool, full int, err error)
	// ReleaseSlots removes holder from each set. Missing entries are ignored.
	ReleaseSlots(ctx context.Context, holder string, keys ...string) error
	// RefreshSlots extends the expiry of each (key, holder) pair that still exists.
	RefreshSlots(ctx context.Context, ttl time.Duration, held []Held) error
	// SlotCount counts the live holders of a set.
	SlotCount(ctx context.Context, key string) (int, error)
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
