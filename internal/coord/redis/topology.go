package redis

import (
	"context"
	"errors"

	goredis "github.com/redis/go-redis/v9"
)

// topologyHook makes a Cluster client read the cluster's layout again (CLUSTER SLOTS) as
// soon as a call fails without a Redis reply, or with CLUSTERDOWN. go-redis reads it again
// only on a MOVED or ASK redirection, or once a minute: after a master died and its replica
// took over, calls for that master's slots kept going to the dead address, and failing, for
// up to that minute (TestRedisCluster measured 56 s before this hook). go-redis coalesces the
// reloads (one at a time, 200 ms apart), so a burst of failures costs a few CLUSTER SLOTS.
type topologyHook struct{ cc *goredis.ClusterClient }

var _ goredis.Hook = topologyHook{}

// DialHook passes dials through.
func (h topologyHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

// ProcessHook reloads the layout after a failed command.
func (h topologyHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		if layoutMayHaveChanged(err) {
			h.cc.ReloadState(ctx)
		}
		return err
	}
}

// ProcessPipelineHook reloads the layout after a failed pipeline.
func (h topologyHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		err := next(ctx, cmds)
		changed := layoutMayHaveChanged(err)
		for _, cmd := range cmds {
			changed = changed || layoutMayHaveChanged(cmd.Err())
		}
		if changed {
			h.cc.ReloadState(ctx)
		}
		return err
	}
}

// reloadLayout asks a Cluster client to read the layout again, for failures the hook does
// not see: a subscription's connection (go-redis dials it outside the command path).
func (c *Coordinator) reloadLayout(ctx context.Context) {
	if cc, ok := c.client.(*goredis.ClusterClient); ok {
		cc.ReloadState(ctx)
	}
}

// layoutMayHaveChanged: the server could not be reached or answered in time (it may be
// dead, its slots served elsewhere now), or the cluster said it is down (a failover under
// way). A Redis reply (nil included) or the caller giving up says nothing about the layout.
func layoutMayHaveChanged(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if goredis.HasErrorPrefix(err, "CLUSTERDOWN") {
		return true
	}
	var reply goredis.Error
	return !errors.As(err, &reply)
}
