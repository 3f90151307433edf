package redis

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// fenceSuffix ends the key of a lease's fence, beside the lease's own key (leases.go).
const fenceSuffix = ":fence"

// sweepFenceScript: KEYS[1] a lease, KEYS[2] its fence (one hash tag); ARGV[1] idle ms.
// Deletes the fence when the lease is free and the fence is older than idle by Redis's
// clock. Returns 1 when it deleted.
var sweepFenceScript = goredis.NewScript(nowMillis + `
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local fence = tonumber(redis.call('GET', KEYS[2]) or 'x')
if fence and fence < now - tonumber(ARGV[1]) then
  return redis.call('DEL', KEYS[2])
end
return 0
`)

// sweepBatch is how many keys one SCAN step asks for.
const sweepBatch = 500

// SweepLeases scans every master for lease fences and deletes those of free leases older
// than idle, each after checking the lease in one script (a grant between the scan and the
// script keeps its fence).
func (c *Coordinator) SweepLeases(ctx context.Context, idle time.Duration) (int, error) {
	ms, err := millis("sweep leases", idle)
	if err != nil {
		return 0, err
	}
	var mu sync.Mutex
	var fences []string
	scan := func(ctx context.Context, client *goredis.Client) error {
		iter := client.Scan(ctx, 0, c.fencePattern(), sweepBatch).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			fences = append(fences, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	switch cl := c.client.(type) {
	case *goredis.ClusterClient: // every master holds its share of the key space
		err = cl.ForEachMaster(ctx, scan)
	case *goredis.Client:
		err = scan(ctx, cl)
	default:
		return 0, fmt.Errorf("redis sweep leases: unexpected client %T", c.client)
	}
	if err != nil {
		return 0, unavailable("sweep leases: scan", err)
	}
	n := 0
	for _, fence := range fences {
		octx, cancel := c.op(ctx)
		deleted, err := sweepFenceScript.Run(octx, c.client, []string{strings.TrimSuffix(fence, fenceSuffix), fence}, ms).Int64()
		cancel()
		if err != nil {
			return n, unavailable("sweep leases", err)
		}
		n += int(deleted)
	}
	return n, nil
}

// fencePattern matches the fence key of every lease: leaseKey with a wildcard for the
// name, Redis's glob characters in the rest escaped.
func (c *Coordinator) fencePattern() string {
	const marker = "\x00"
	key := c.leaseKey(marker) + fenceSuffix
	var b strings.Builder
	for _, r := range key {
		switch {
		case string(r) == marker:
			b.WriteByte('*')
		case strings.ContainsRune(`*?[]\`, r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
