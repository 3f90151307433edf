package redis

import (
	"context"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"
)

// CommandCounter counts what a coordinator sends to Redis, for benchmarks that report
// Redis commands and round trips per gateway request. Set it in Options.Counter. RefreshSlots
// is not counted: it is each node's heartbeat, a few calls a second whatever the load, not
// part of any request.
type CommandCounter struct {
	commands   atomic.Int64
	roundTrips atomic.Int64
}

var _ goredis.Hook = (*CommandCounter)(nil)

// Commands is the number of commands sent so far (a script fallback counts EVALSHA and EVAL).
func (c *CommandCounter) Commands() int64 { return c.commands.Load() }

// RoundTrips is the number of request/response exchanges so far (a pipeline counts once).
func (c *CommandCounter) RoundTrips() int64 { return c.roundTrips.Load() }

// Reset sets both counts to zero.
func (c *CommandCounter) Reset() {
	c.commands.Store(0)
	c.roundTrips.Store(0)
}

// DialHook passes dials through uncounted.
func (c *CommandCounter) DialHook(next goredis.DialHook) goredis.DialHook { return next }

// uncounted marks the context of a call the counter skips.
type uncounted struct{}

// ProcessHook counts one command, one round trip.
func (c *CommandCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if ctx.Value(uncounted{}) != nil {
			return next(ctx, cmd)
		}
		c.commands.Add(1)
		c.roundTrips.Add(1)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook counts every command of a pipeline and one round trip.
func (c *CommandCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		c.commands.Add(int64(len(cmds)))
		c.roundTrips.Add(1)
		return next(ctx, cmds)
	}
}
