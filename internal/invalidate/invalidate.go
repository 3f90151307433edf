// Package invalidate names the messages one node sends the others when durable state that
// they cache changes (an API key disabled, an account marked rate-limited, a group edited).
// Nodes cache for speed; these messages keep the caches honest within a second.
package invalidate

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// Channel is the one pub/sub channel all invalidations travel on.
const Channel = "fluxcode:invalidate"

// Kind says which cache an invalidation is for.
type Kind string

const (
	Key  Kind = "key"  // an API key (id = key id)
	User Kind = "user" // a user: status, balance, concurrency (id = user id)
	// Balance says charges changed a user's balance or subscription usage (id = user id):
	// nodes read it again when next needed and keep what they knew meanwhile, where User
	// makes them forget the user's keys.
	Balance    Kind = "balance"
	Group      Kind = "group"   // a group (id = group id)
	Account    Kind = "account" // an upstream account, its groups or health marks (id = account id)
	Settings   Kind = "settings"
	ErrorRules Kind = "rules"
	// All asks every cache to drop everything. Subscribers also treat the empty message, which
	// coord.PubSub sends after a reconnection, as All.
	All Kind = "all"
)

// Message is one decoded invalidation.
type Message struct {
	Kind Kind
	ID   int64
}

// Publish sends an invalidation for kind and id (0 when the kind has no id).
func Publish(ctx context.Context, ps coord.PubSub, kind Kind, id int64) error {
	if err := ps.Publish(ctx, Channel, string(kind)+":"+strconv.FormatInt(id, 10)); err != nil {
		return fmt.Errorf("publish invalidation %s:%d: %w", kind, id, err)
	}
	return nil
}

// Parse decodes a message from Channel. The empty message (a reconnection) and anything
// unreadable decode as All: dropping a cache is always safe.
func Parse(msg string) Message {
	kind, idText, ok := strings.Cut(msg, ":")
	if !ok {
		return Message{Kind: All}
	}
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil {
		return Message{Kind: All}
	}
	return Message{Kind: Kind(kind), ID: id}
}
