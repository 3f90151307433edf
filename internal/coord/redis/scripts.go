package redis

import (
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/fluxcode/fluxcode/internal/coord"
)

// The scripts run with EVALSHA, falling back to EVAL once when the server has not cached
// them (a restart, SCRIPT FLUSH): one round trip in the steady state. Each reads the time
// from the server (TIME) so that every node agrees on what has expired. A slot member is
// live while its score (expiry, ms) is above now.

// nowMillis is the prelude that reads Redis's clock in milliseconds.
const nowMillis = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// slotHelpers are the slot-set functions of the acquiring scripts. A script pays for every
// redis.call it makes (about a microsecond each on a warm server, several on one woken from
// idle), and these run on every request, so the common case costs three calls per set:
// ZCARD to see room, ZADD to take it, PTTL to see whether the set's life must be extended.
//
// room: expired holders are only purged when the set looks full, since until then they
// cannot change the answer; a set therefore holds at most limit members plus the one added.
// A holder already in the set always has room (a retry, or a queue slot taken again).
//
// take: the set must live as long as its longest holder, so that a holder's slot is not lost
// with the set. A holder's expiry is now + ttl, so the set's life is extended to ttl when
// less than 7/8 of ttl is left, not on every call: a live holder is refreshed (and the set
// extended to its full ttl by refreshScript) every ttl/3, long before the remaining eighth
// could matter; a crashed node's holder may lose its slot up to ttl/8 early, still within
// the ttl that bounds it.
const slotHelpers = `
local function room(key, holder, limit)
  if redis.call('ZCARD', key) < limit then
    return true
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZSCORE', key, holder) then
    return true
  end
  return redis.call('ZCARD', key) < limit
end
local function take(key, holder, exp, ttl)
  redis.call('ZADD', key, exp, holder)
  if redis.call('PTTL', key) < ttl - math.floor(ttl / 8) then
    redis.call('PEXPIRE', key, ttl)
  end
end
`

// epochHelpers keep the epoch (coord.Slots) and its recovery window in one hash: id (the
// server's TIME when the epoch began), began and opens (ms; AcquireAccount grants from
// opens on), and while the window is open the nodes it waits for: field n:<node> is "w"
// (expected to register its slots again) or "d" (done), counted by nwait and ndone.
//
// The hash is written without replication (REPL_NONE), so it never reaches the append-only
// file nor, through the command stream, a replica; and it expires epochTTL after a node last
// extended it (keepEpoch). A replica copies the whole dataset, the epoch included, only at a
// full resynchronisation, and that copy expires on it within epochTTL. So a replica promoted
// by a failover, a server restarted empty or from its files, or one that stalled for longer
// than epochTTL, lacks the epoch and begins a new one, exactly when it may lack holders.
//
// Which nodes a new epoch waits for cannot come from the server, which lost them: every
// node remembers the members it last saw (the zset {prefix}:nodes, each node's score the
// time until which it may hold a slot) and hands that list to every poll and refresh; the
// window waits for every node named by any node that arrived (arrive). It opens once all of
// them re-registered and at least one did, no sooner than minWindow after it began, and in
// any case recoveryWindow after it began.
var epochHelpers = fmt.Sprintf(`
local epochTTL = %d
local minWindow = %d
local recoveryWindow = %d
local function fmt(n)
  return string.format('%%d', n)
end
local function epoch(key)
  local v = redis.call('HMGET', key, 'id', 'opens')
  if v[1] then
    return v[1], tonumber(v[2])
  end
  local id = t[1] .. '.' .. t[2]
  redis.set_repl(redis.REPL_NONE)
  redis.call('DEL', key)
  redis.call('HSET', key, 'id', id, 'began', fmt(now), 'opens', fmt(now + recoveryWindow), 'nwait', 0, 'ndone', 0)
  redis.call('PEXPIRE', key, epochTTL)
  redis.set_repl(redis.REPL_ALL)
  return id, now + recoveryWindow
end
local function keepEpoch(key)
  redis.set_repl(redis.REPL_NONE)
  redis.call('PEXPIRE', key, epochTTL)
  redis.set_repl(redis.REPL_ALL)
end
`, epochTTL.Milliseconds(), coord.MinRecoveryWindow.Milliseconds(), coord.RecoveryWindow.Milliseconds())

// arriveHelpers: arrive notes, while the window of the epoch in key is open, that node has
// registered its slots again (when done) and that every node in list must; it returns when
// the window opens now. join keeps node a member until exp at least, drops lapsed members
// and returns the members.
const arriveHelpers = `
local function arrive(key, opens, node, done, list)
  if opens <= now then
    return opens
  end
  redis.set_repl(redis.REPL_NONE)
  if done then
    local s = redis.call('HGET', key, 'n:' .. node)
    if s ~= 'd' then
      redis.call('HSET', key, 'n:' .. node, 'd')
      redis.call('HINCRBY', key, 'ndone', 1)
      if s == 'w' then
        redis.call('HINCRBY', key, 'nwait', -1)
      end
    end
  end
  for _, n in ipairs(list) do
    if redis.call('HSETNX', key, 'n:' .. n, 'w') == 1 then
      redis.call('HINCRBY', key, 'nwait', 1)
    end
  end
  local v = redis.call('HMGET', key, 'began', 'nwait', 'ndone')
  local began = tonumber(v[1])
  local want = began + recoveryWindow
  if tonumber(v[2]) == 0 and tonumber(v[3]) > 0 then
    want = math.max(began + minWindow, now)
  end
  if want ~= opens then
    redis.call('HSET', key, 'opens', fmt(want))
  end
  redis.set_repl(redis.REPL_ALL)
  return want
end
local function join(key, node, exp)
  redis.call('ZADD', key, 'GT', fmt(exp), node)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', fmt(now))
  return redis.call('ZRANGE', key, 0, -1)
end
`

// epochTTL is how long the epoch outlives its last extension: every coordinator extends it
// at least every coord.RecoveryWindow/8 (Coordinator.keepEpoch), so only a server that lost
// it, or that no node could reach for that long, begins a new epoch. A node stays a member
// for epochTTL after its last poll, and after the expiry of every slot it took.
const epochTTL = coord.RecoveryWindow

// acquireScript: KEYS are slot sets; ARGV[1] holder, ARGV[2] ttl ms, ARGV[2+i] limit of
// KEYS[i]. Checks every limit, then adds to all sets. Returns 0 on success, else the 1-based
// index of the first full set (nothing was added).
var acquireScript = goredis.NewScript(nowMillis + slotHelpers + `
local holder = ARGV[1]
local ttl = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  if not room(key, holder, tonumber(ARGV[2 + i])) then
    return i
  end
end
local exp = now + ttl
for _, key in ipairs(KEYS) do
  take(key, holder, exp, ttl)
end
return 0
`)

// accountScript is AcquireAccount (see coord.Scheduler for the semantics).
// KEYS: the base sets, then the sets of the limited candidate accounts, then the session's
// binding when there is one, then the epoch, then the members. ARGV[1] holder, [2] ttl ms,
// [3] session ttl ms (0: no session), [4] n base, [5] n accounts, [6] n keep; then the n base
// limits; then per account its id, its limit and the index of its set in KEYS (0:
// unlimited); then the kept account ids; last the node. A grant keeps the node a member
// while the slots live. Returns {granted account's 1-based position or 0, full base set's 1-based
// position or 0, the bound account id or an empty string, the epoch, the ms until the
// epoch's recovery window closes (> 0: nothing was read or taken)}.
var accountScript = goredis.NewScript(nowMillis + slotHelpers + epochHelpers + `
local ep, opens = epoch(KEYS[#KEYS - 1])
local wait = opens - now
if wait > 0 then
  return {0, 0, '', ep, wait}
end
local holder = ARGV[1]
local ttl = tonumber(ARGV[2])
local sessionTTL = tonumber(ARGV[3])
local nBase, nAcct, nKeep = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local acctArg = 7 + nBase
local keepArg = acctArg + 3 * nAcct

local session = nil
local bound = false
if sessionTTL > 0 then
  session = KEYS[#KEYS - 2]
  bound = redis.call('GET', session)
end
for i = 1, nBase do
  if not room(KEYS[i], holder, tonumber(ARGV[6 + i])) then
    return {0, i, bound or '', ep, 0}
  end
end
local function fits(j)
  local k = tonumber(ARGV[acctArg + 3 * (j - 1) + 2])
  return k == 0 or room(KEYS[k], holder, tonumber(ARGV[acctArg + 3 * (j - 1) + 1]))
end
local first = 0
if bound then
  for j = 1, nAcct do
    if ARGV[acctArg + 3 * (j - 1)] == bound then
      first = j
      break
    end
  end
end
local chosen = 0
if first > 0 and fits(first) then
  chosen = first
else
  for j = 1, nAcct do
    if j ~= first and fits(j) then
      chosen = j
      break
    end
  end
end
if chosen == 0 then
  return {0, 0, bound or '', ep, 0}
end

local exp = now + ttl
redis.call('ZADD', KEYS[#KEYS], 'GT', fmt(exp + epochTTL), ARGV[#ARGV])
for i = 1, nBase do
  take(KEYS[i], holder, exp, ttl)
end
local k = tonumber(ARGV[acctArg + 3 * (chosen - 1) + 2])
if k > 0 then
  take(KEYS[k], holder, exp, ttl)
end
if session then
  local id = ARGV[acctArg + 3 * (chosen - 1)]
  local kept = false
  for j = 1, nKeep do
    if ARGV[keepArg + j - 1] == bound then
      kept = true
    end
  end
  if bound == id or not bound or (first == 0 and not kept) then
    redis.call('SET', session, id, 'PX', sessionTTL)
  end
end
return {chosen, 0, bound or '', ep, 0}
`)

// releaseScript: KEYS are slot sets; ARGV[1] holder.
var releaseScript = goredis.NewScript(`
for _, key in ipairs(KEYS) do
  redis.call('ZREM', key, ARGV[1])
end
return 0
`)

// releaseBindScript: KEYS are slot sets, then the sticky key; ARGV[1] holder, ARGV[2] the
// account id, ARGV[3] the binding's ttl ms.
var releaseBindScript = goredis.NewScript(`
for i = 1, #KEYS - 1 do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
redis.call('SET', KEYS[#KEYS], ARGV[2], 'PX', ARGV[3])
return 0
`)

// refreshScript: KEYS[i] a slot set, then the epoch, then the members; ARGV[1] ttl ms,
// ARGV[2] the caller's epoch, ARGV[3] the node, ARGV[4] n, ARGV[4+i] the holder of KEYS[i]
// (i <= n), then the members the node knows. Under the caller's epoch it extends live holders
// only: an expired one may already have been replaced, so it is not revived. Under another
// epoch the state was lost since the caller's last refresh: every holder is registered again
// and the node counts as re-registered. Returns {epoch, ms until its window opens, members}.
var refreshScript = goredis.NewScript(nowMillis + epochHelpers + arriveHelpers + `
local ek, mk = KEYS[#KEYS - 1], KEYS[#KEYS]
local ep, opens = epoch(ek)
keepEpoch(ek)
local again = ep ~= ARGV[2]
local ttl = tonumber(ARGV[1])
local exp = now + ttl
local n = tonumber(ARGV[4])
for i = 1, n do
  local key, holder = KEYS[i], ARGV[4 + i]
  local keep = again
  if not keep then
    local score = redis.call('ZSCORE', key, holder)
    keep = score and tonumber(score) > now
  end
  if keep then
    redis.call('ZADD', key, exp, holder)
    if redis.call('PTTL', key) < ttl then
      redis.call('PEXPIRE', key, ttl)
    end
  end
end
opens = arrive(ek, opens, ARGV[3], again, {unpack(ARGV, 5 + n)})
return {ep, opens - now, join(mk, ARGV[3], exp + epochTTL)}
`)

// pollScript: KEYS[1] the epoch, KEYS[2] the members; ARGV[1] the node, then the members it
// knows. Extends the epoch and the node's membership. Returns as refreshScript.
var pollScript = goredis.NewScript(nowMillis + epochHelpers + arriveHelpers + `
local ep, opens = epoch(KEYS[1])
keepEpoch(KEYS[1])
opens = arrive(KEYS[1], opens, ARGV[1], false, {unpack(ARGV, 2)})
return {ep, opens - now, join(KEYS[2], ARGV[1], now + epochTTL)}
`)

// startEpochScript: KEYS[1] the epoch, KEYS[2] the members; ARGV[1] the node. New runs it:
// the node joins, holding nothing, and expects every member the server has (a new epoch on
// a fresh server thus opens after minWindow). Returns as refreshScript.
var startEpochScript = goredis.NewScript(nowMillis + epochHelpers + arriveHelpers + `
local ep, opens = epoch(KEYS[1])
keepEpoch(KEYS[1])
local members = join(KEYS[2], ARGV[1], now + epochTTL)
opens = arrive(KEYS[1], opens, ARGV[1], true, members)
return {ep, opens - now, members}
`)

// countScript: KEYS[1] a slot set. Counts holders alive now.
var countScript = goredis.NewScript(nowMillis + `
return redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%d', now), '+inf')
`)

// leaseScript: KEYS[1] the lease (value = owner), KEYS[2] its fence; ARGV[1] owner,
// ARGV[2] ttl ms. Returns {granted 0|1, fence}. The owner extends; a free lease is granted
// with a new fence. The fence never falls below Redis's clock in ms, so it keeps growing
// even if Redis lost its data in between (grants of one name are far rarer than 1 per ms).
var leaseScript = goredis.NewScript(nowMillis + `
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, tonumber(redis.call('GET', KEYS[2]) or '0')}
end
if cur then
  return {0, 0}
end
local fence = redis.call('INCR', KEYS[2])
if fence < now then
  fence = now
  redis.call('SET', KEYS[2], string.format('%d', now))
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, fence}
`)

// deleteIfEqualScript: KEYS[1], ARGV[1] expected value. Deletes only a value still equal,
// so a late release never removes what someone else now holds.
var deleteIfEqualScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// incrScript: KEYS[1] counter, ARGV[1] delta, ARGV[2] ttl ms (<= 0: keep). A key without
// expiry gets ttl; a running window is never extended.
var incrScript = goredis.NewScript(`
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 and redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return v
`)
