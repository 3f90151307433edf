package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// rateKey is a TakeRate window. Its hash tag is its scope's, which the windows of one call
// share, so the script runs on Redis Cluster; different scopes spread over the shards.
func (c *Coordinator) rateKey(scope, key string) string {
	return "{" + c.prefix + ":rate:" + scope + "}:" + key
}

// takeRateScript: KEYS the windows; ARGV three per window: limit (<= 0: not checked), cost,
// window ms. Checks every limited window first and changes nothing when one is full,
// returning the ms until it ends; otherwise adds every cost (a window starts with its first
// increase) and returns -1.
var takeRateScript = goredis.NewScript(`
for i = 1, #KEYS do
  local limit = tonumber(ARGV[3*i-2])
  local cost = tonumber(ARGV[3*i-1])
  if limit > 0 then
    local v = tonumber(redis.call('GET', KEYS[i]) or '0')
    if v + cost > limit or (cost == 0 and v >= limit) then
      local left = redis.call('PTTL', KEYS[i])
      if left < 0 then left = tonumber(ARGV[3*i]) end
      return left
    end
  end
end
for i = 1, #KEYS do
  local cost = tonumber(ARGV[3*i-1])
  if cost ~= 0 then
    redis.call('INCRBY', KEYS[i], cost)
    if redis.call('PTTL', KEYS[i]) < 0 then
      redis.call('PEXPIRE', KEYS[i], ARGV[3*i])
    end
  end
end
return -1
`)

// TakeRate implements coord.Counters in one script call.
func (c *Coordinator) TakeRate(ctx context.Context, reqs ...coord.RateReq) (bool, time.Duration, error) {
	if len(reqs) == 0 {
		return true, 0, nil
	}
	keys := make([]string, len(reqs))
	args := make([]any, 0, 3*len(reqs))
	for i, r := range reqs {
		ms, err := millis("take rate", r.Window)
		if err != nil {
			return false, 0, fmt.Errorf("redis take rate %s: %w", r.Key, err)
		}
		if r.Scope != reqs[0].Scope {
			return false, 0, fmt.Errorf("redis take rate: windows %s and %s of one call have different scopes %q and %q",
				reqs[0].Key, r.Key, reqs[0].Scope, r.Scope)
		}
		keys[i] = c.rateKey(r.Scope, r.Key)
		args = append(args, r.Limit, r.Cost, ms)
	}
	ctx, cancel := c.op(ctx)
	defer cancel()
	left, err := takeRateScript.Run(ctx, c.client, keys, args...).Int64()
	if err != nil {
		return false, 0, unavailable("take rate", err)
	}
	if left < 0 {
		return true, 0, nil
	}
	return false, time.Duration(left) * time.Millisecond, nil
}
