package redis

import (
	"context"
	"fmt"
	"slices"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// The recovery window of a new epoch waits for the nodes that may hold slots (scripts.go,
// epochHelpers). The server lost them with its data, so each node remembers the members it
// last saw and hands them to every poll and refresh: while a window is open the lists are
// merged, so that a second loss in the middle of a recovery forgets no one; once it is open,
// the server's list (members whose slots may still live) replaces the node's.

// withMembers appends the members this node knows to a script's arguments.
func (c *Coordinator) withMembers(args []any) []any {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.members {
		args = append(args, m)
	}
	return args
}

// runEpoch runs one of the scripts that answer {epoch, ms until its window opens, members},
// learns the members and returns the epoch.
func (c *Coordinator) runEpoch(ctx context.Context, op string, s *goredis.Script, keys []string, args []any) (string, error) {
	ctx, cancel := c.op(context.WithValue(ctx, uncounted{}, true))
	defer cancel()
	out, err := s.Run(ctx, c.client, keys, args...).Slice()
	if err != nil {
		return "", unavailable(op, err)
	}
	epoch, wait, members, err := parseEpochState(out)
	if err != nil {
		return "", fmt.Errorf("redis %s: %w", op, err)
	}
	c.learn(wait > 0, members)
	c.refreshed.Store(time.Now().UnixNano())
	return epoch, nil
}

// learn updates the members this node knows.
func (c *Coordinator) learn(recovering bool, members []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !recovering {
		c.members = members
		return
	}
	for _, m := range members {
		if !slices.Contains(c.members, m) {
			c.members = append(c.members, m)
		}
	}
}

// parseEpochState reads {epoch, ms until its recovery window opens, members}.
func parseEpochState(out []any) (epoch string, wait time.Duration, members []string, err error) {
	if len(out) != 3 {
		return "", 0, nil, fmt.Errorf("script answered %d values, want 3", len(out))
	}
	epoch, ok1 := out[0].(string)
	ms, ok2 := out[1].(int64)
	list, ok3 := out[2].([]any)
	if !ok1 || !ok2 || !ok3 || epoch == "" {
		return "", 0, nil, fmt.Errorf("unexpected answer %v", out)
	}
	members = make([]string, 0, len(list))
	for _, m := range list {
		s, ok := m.(string)
		if !ok {
			return "", 0, nil, fmt.Errorf("unexpected member %v", m)
		}
		members = append(members, s)
	}
	return epoch, time.Duration(ms) * time.Millisecond, members, nil
}

// keepEpoch extends the epoch's life (see epochTTL) and this node's membership every
// coord.RecoveryWindow/8 until Close, when nothing else polled meanwhile, so that the epoch
// lapses only on a server no node reaches. A coordinator that never took a slot registers
// at once under a new epoch (it has nothing to register), so that it never holds a recovery
// window open; one whose owner takes slots leaves that to the owner (coord.Slots).
func (c *Coordinator) keepEpoch() {
	t := time.NewTicker(coord.RecoveryWindow / 8)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, c.refreshed.Load())) < coord.RecoveryWindow/8 {
			continue // the owner's polls did it
		}
		// A failure is Redis being down: the next tick tries again.
		cur, err := c.PollEpoch(context.Background())
		if err != nil || cur == last {
			continue
		}
		if !c.takesSlots.Load() {
			cur, err = c.RefreshSlots(context.Background(), time.Minute, "", nil)
		}
		if err == nil {
			last = cur
		}
	}
}

// startEpoch checks that Redis answers, joins the members and begins an epoch when the
// server has none, then waits coord.MinRecoveryWindow: long enough for every running node to
// see this one among the members, so that none forgets it if the state is lost later, and
// for an epoch begun on a fresh server to open.
func (c *Coordinator) startEpoch(ctx context.Context) error {
	if _, err := c.runEpoch(ctx, "start epoch", startEpochScript, []string{c.epochKey(), c.membersKey()}, []any{c.node}); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("redis start epoch: %w", ctx.Err())
	case <-time.After(coord.MinRecoveryWindow):
		return nil
	}
}

// leave removes this node from the members, so that a loss of the state soon after a
// graceful stop does not wait for it.
func (c *Coordinator) leave() {
	ctx, cancel := c.op(context.Background())
	defer cancel()
	_ = c.client.ZRem(ctx, c.membersKey(), c.node).Err()
}
