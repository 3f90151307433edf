package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Timing of the subscriber's connection care. A Redis restart on the same host closes the
// socket and is noticed at once; these cover a peer that vanished without closing it.
const (
	// idleProbe: after this long without traffic the subscriber sends PING.
	idleProbe = 5 * time.Second
	// reconnect backoff while the server cannot be reached.
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// Publish sends msg on channel to every node subscribed now.
func (c *Coordinator) Publish(ctx context.Context, channel, msg string) error {
	ctx, cancel := c.op(ctx)
	defer cancel()
	publish := c.client.Publish
	if c.sharded {
		publish = c.client.SPublish
	}
	if err := publish(ctx, c.channelName(channel), msg).Err(); err != nil {
		return unavailable("publish", err)
	}
	return nil
}

// subscribeTo opens a PubSub on channel. On Redis Cluster it is a sharded channel
// (SSUBSCRIBE, SPUBLISH): every message of one channel passes through the master of the
// channel's slot, so they arrive in the order they were published, whichever node each
// publisher reached; a plain channel is broadcast over the cluster bus from the node each
// publisher happened to reach, and two messages may cross.
func (c *Coordinator) subscribeTo(ctx context.Context, channel string) *goredis.PubSub {
	if c.sharded {
		return c.client.SSubscribe(ctx, channel)
	}
	return c.client.Subscribe(ctx, channel)
}

// subscription is one Subscribe call: a go-redis PubSub and the loop that feeds out.
type subscription struct {
	c       *Coordinator
	channel string // full channel name, prefix included
	out     chan string
	ctx     context.Context
	cancel  context.CancelFunc
}

// Subscribe returns once Redis confirmed the subscription, so every later Publish reaches
// the channel. go-redis re-subscribes after a lost connection; each re-subscription is
// reported as "" because messages sent meanwhile are lost.
func (c *Coordinator) Subscribe(ctx context.Context, channel string) (<-chan string, error) {
	sctx, cancel := context.WithCancel(ctx)
	s := &subscription{c: c, channel: c.channelName(channel), out: make(chan string, 16), ctx: sctx, cancel: cancel}
	ps, err := s.subscribe()
	if err != nil {
		cancel()
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel()
		_ = ps.Close()
		return nil, unavailable("subscribe", errors.New("coordinator closed"))
	}
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	go s.run(ps)
	return s.out, nil
}

// subscribe opens a PubSub and waits, within the op timeout, for Redis's confirmation.
func (s *subscription) subscribe() (*goredis.PubSub, error) {
	ctx, cancel := s.c.op(s.ctx)
	defer cancel()
	ps := s.c.subscribeTo(ctx, s.channel)
	reply, err := ps.ReceiveTimeout(ctx, s.c.opTimeout)
	if err == nil {
		if _, ok := reply.(*goredis.Subscription); !ok {
			err = fmt.Errorf("unexpected first reply %T", reply)
		}
	}
	if err != nil {
		_ = ps.Close()
		return nil, unavailable("subscribe", err)
	}
	return ps, nil
}

// run receives until the subscription ends, then closes out.
func (s *subscription) run(ps *goredis.PubSub) {
	defer func() {
		_ = ps.Close()
		s.c.mu.Lock()
		delete(s.c.subs, s)
		s.c.mu.Unlock()
		close(s.out)
	}()
	// Closing the PubSub unblocks a Receive in progress when the subscription ends. Each
	// watch captures its own PubSub, as the loop may replace ps.
	watch := func(p *goredis.PubSub) func() bool { return context.AfterFunc(s.ctx, func() { _ = p.Close() }) }
	stop := watch(ps)
	defer func() { stop() }()

	backoff := minBackoff
	awaitingPong := false
	for {
		reply, err := ps.ReceiveTimeout(s.ctx, s.c.probeIdle)
		if s.ctx.Err() != nil {
			return
		}
		var nerr net.Error
		switch {
		case err == nil:
			backoff, awaitingPong = minBackoff, false
		case errors.As(err, &nerr) && nerr.Timeout() && !awaitingPong:
			// Quiet line: ask the server to prove it is there.
			awaitingPong = true
			pctx, cancel := s.c.op(s.ctx)
			_ = ps.Ping(pctx)
			cancel()
			continue
		case errors.As(err, &nerr) && nerr.Timeout():
			// No pong either: the peer is gone without closing the socket. Start over on a
			// fresh connection; its confirmation below reports the gap.
			awaitingPong = false
			stop()
			_ = ps.Close()
			ps = s.c.subscribeTo(s.ctx, s.channel)
			stop = watch(ps)
			continue
		default:
			// Connection lost or server unreachable: go-redis dials and re-subscribes on
			// the next Receive; wait a little so a down server is not hammered. On Cluster
			// the channel's master may have died: look for the one serving it now.
			if layoutMayHaveChanged(err) {
				s.c.reloadLayout(s.ctx)
			}
			if !sleep(s.ctx, backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		var msg string
		switch m := reply.(type) {
		case *goredis.Message:
			msg = m.Payload
		case *goredis.Subscription:
			if m.Kind != "subscribe" && m.Kind != "ssubscribe" {
				continue
			}
			msg = "" // re-subscribed after a gap: subscribers drop their caches
		default:
			continue // pongs
		}
		select {
		case s.out <- msg:
		case <-s.ctx.Done():
			return
		}
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
