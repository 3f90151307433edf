package memory

import (
	"context"
	"sync"
)

// maxQueued bounds what one slow subscriber may have pending. Past it the queue is replaced
// by a single "" (drop your caches), which says everything the lost messages would have.
const maxQueued = 1024

type hub struct {
	mu   sync.Mutex
	subs map[string]map[*subscriber]struct{}
	stop chan struct{} // closed by Close: every subscription ends
}

// subscriber owns a queue so that Publish never waits for a slow reader.
type subscriber struct {
	out   chan string
	wake  chan struct{} // capacity 1: "the queue may have something"
	mu    sync.Mutex
	queue []string
}

func (s *subscriber) push(msg string) {
	s.mu.Lock()
	if len(s.queue) >= maxQueued {
		s.queue = append(s.queue[:0], "")
	} else {
		s.queue = append(s.queue, msg)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q
}

// deliver moves queued messages to out until ctx ends or the hub stops.
func (s *subscriber) deliver(ctx context.Context, stop <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-s.wake:
		}
		for _, msg := range s.take() {
			select {
			case s.out <- msg:
			case <-ctx.Done():
				return
			case <-stop:
				return
			}
		}
	}
}

// close ends every subscription; Coordinator.Close calls it once.
func (h *hub) close() { close(h.stop) }

// Publish queues msg for every current subscriber of channel.
func (c *Coordinator) Publish(ctx context.Context, channel, msg string) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	h := &c.pubsub
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[channel] {
		s.push(msg)
	}
	return nil
}

// Subscribe registers before it returns, so every later Publish reaches the channel. An
// in-process hub never disconnects, so "" appears only when a slow reader overflowed.
func (c *Coordinator) Subscribe(ctx context.Context, channel string) (<-chan string, error) {
	if err := c.check(ctx); err != nil {
		return nil, err
	}
	s := &subscriber{out: make(chan string), wake: make(chan struct{}, 1)}
	h := &c.pubsub
	h.mu.Lock()
	set := h.subs[channel]
	if set == nil {
		set = make(map[*subscriber]struct{})
		h.subs[channel] = set
	}
	set[s] = struct{}{}
	h.mu.Unlock()

	go func() {
		defer close(s.out)
		s.deliver(ctx, h.stop)
		h.mu.Lock()
		delete(h.subs[channel], s)
		if len(h.subs[channel]) == 0 {
			delete(h.subs, channel)
		}
		h.mu.Unlock()
	}()
	return s.out, nil
}
