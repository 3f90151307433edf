package redis

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// batcher sends the hot-path scripts (AcquireAccount, ReleaseSlots) of concurrent requests
// together. A call made while fewer than max exchanges are in flight goes out at once, by
// itself: at low load nothing waits and nothing is added. A call made while max are in flight
// queues; when an exchange ends, the first queued call takes the whole queue and sends it as
// one pipeline (one write, one read, for Redis as for us). Under load this turns N round
// trips into a few, which is most of what the coordination costs a request (issue 5).
//
// Each call still runs as its own script, atomic on its own; a pipeline only shares the
// socket. A queued call whose context ends before its pipeline is sent is withdrawn, so it
// cannot take slots for a request that has given up.
type batcher struct {
	client  goredis.UniversalClient
	timeout time.Duration // bounds a pipeline sent for several callers
	max     int

	mu     sync.Mutex
	active int          // exchanges in flight
	queue  []*batchCall // waiting for the next pipeline
}

type batchCall struct {
	script *goredis.Script
	keys   []string
	args   []any
	// wake is closed when cmd is set, or when lead is: then this call sends lead (itself
	// first) before it returns.
	wake chan struct{}
	lead []*batchCall
	cmd  *goredis.Cmd
}

// maxInFlight is how many exchanges of the batched scripts one node has in flight at once
// before further calls queue for a pipeline.
const maxInFlight = 4

func newBatcher(client goredis.UniversalClient, timeout time.Duration) *batcher {
	return &batcher{client: client, timeout: timeout, max: maxInFlight}
}

// run runs script s like s.Run, sharing a pipeline with concurrent calls under load.
func (b *batcher) run(ctx context.Context, s *goredis.Script, keys []string, args ...any) *goredis.Cmd {
	b.mu.Lock()
	if b.active < b.max {
		b.active++
		b.mu.Unlock()
		cmd := s.Run(ctx, b.client, keys, args...)
		b.handOff()
		return cmd
	}
	c := &batchCall{script: s, keys: keys, args: args, wake: make(chan struct{})}
	b.queue = append(b.queue, c)
	b.mu.Unlock()

	select {
	case <-c.wake:
	case <-ctx.Done():
		b.mu.Lock()
		if i := slices.Index(b.queue, c); i >= 0 {
			b.queue = slices.Delete(b.queue, i, i+1)
			b.mu.Unlock()
			cmd := goredis.NewCmd(ctx)
			cmd.SetErr(ctx.Err())
			return cmd
		}
		b.mu.Unlock()
		<-c.wake // already taken into a pipeline, whose exchange is bounded by b.timeout
	}
	if c.lead != nil {
		b.send(c.lead)
		b.handOff()
	}
	return c.cmd
}

// handOff ends an exchange: the first queued call, if any, becomes the sender of all the
// queued ones; otherwise one exchange fewer is in flight.
func (b *batcher) handOff() {
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.active--
		b.mu.Unlock()
		return
	}
	batch := b.queue
	b.queue = nil
	b.mu.Unlock()
	batch[0].lead = batch
	close(batch[0].wake)
}

// send runs the batch's scripts in one pipeline and gives each call its answer. Its context
// is its own: the caller that sends may have gone, the others have not. A script Redis does
// not know (after a restart) is run again alone through Run, which loads it.
func (b *batcher) send(batch []*batchCall) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	cmds := make([]*goredis.Cmd, len(batch))
	if len(batch) == 1 {
		cmds[0] = batch[0].script.Run(ctx, b.client, batch[0].keys, batch[0].args...)
	} else {
		// The pipeline's own error is each command's; every one is looked at below.
		_, _ = b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, c := range batch {
				cmds[i] = c.script.EvalSha(ctx, p, c.keys, c.args...)
			}
			return nil
		})
		for i, c := range batch {
			if isNoScript(cmds[i].Err()) {
				cmds[i] = c.script.Run(ctx, b.client, c.keys, c.args...)
			}
		}
	}
	for i, c := range batch {
		c.cmd = cmds[i]
		if i > 0 { // batch[0] is the sender: its wake is closed already
			close(c.wake)
		}
	}
}

func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, goredis.ErrNoScript) || goredis.HasErrorPrefix(err, "NOSCRIPT"))
}
