-- A shared gauge: permits are leases, members of a sorted set scored by
-- their expiry (Redis time, ms), so a crashed holder's permits come back.
-- Waiters queue in arrival order; one that stops renewing its place leaves.
-- KEYS: holders (zset), queue (zset waiter -> arrival), alive (zset waiter
-- -> expiry), meta (hash: cfg, seq). All share the limit's hash tag.
-- ARGV[1]: mode, ARGV[2]: cfg (the limit), ARGV[3]: lease ms, then by mode:
--   take:   waiter ("id|n", its member of queue and alive), n, may queue
--           (1|0), holder ids...
--   leave:  waiter
--   release: holder ids...
--   renew:  waiters count, waiters..., holder ids...
-- Channel ARGV[4] of take/leave/release hears "go" when permits may be free.
local holders, queue, alive, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mode, lease = ARGV[1], tonumber(ARGV[3])
local cfg = redis.call('HGET', meta, 'cfg')
if cfg and cfg ~= ARGV[2] then return { -1, cfg } end
local limit = tonumber(ARGV[2])

local function keep()
  -- Everything is gone a while after its last use: nothing is left behind.
  redis.call('HSET', meta, 'cfg', ARGV[2])
  for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, lease * 4 + 1000) end
end
local function purge()
  redis.call('ZREMRANGEBYSCORE', holders, '-inf', now)
  local gone = redis.call('ZRANGEBYSCORE', alive, '-inf', now)
  for _, w in ipairs(gone) do redis.call('ZREM', queue, w); redis.call('ZREM', alive, w) end
end
local function weight(member)
  return tonumber(string.match(member, '|(%d+)$'))
end
local function next_expiry()
  local first = redis.call('ZRANGE', holders, 0, 0, 'WITHSCORES')
  if first[2] then return tonumber(first[2]) - now end
  return -1
end
local function signal(channel)
  if redis.call('ZCARD', queue) > 0 and redis.call('ZCARD', holders) < limit then
    redis.call('PUBLISH', channel, 'go')
  end
end

purge()
if mode == 'take' then
  local waiter, n, may_queue = ARGV[5], tonumber(ARGV[6]), ARGV[7] == '1'
  local rank = redis.call('ZRANK', queue, waiter)
  local ahead = {}
  if not rank then
    ahead = redis.call('ZRANGE', queue, 0, -1)
  elseif rank > 0 then
    ahead = redis.call('ZRANGE', queue, 0, rank - 1)
  end
  local booked = 0
  for _, w in ipairs(ahead) do booked = booked + weight(w) end
  local held = redis.call('ZCARD', holders)
  if held + booked + n <= limit then
    for i = 8, 7 + n do redis.call('ZADD', holders, now + lease, ARGV[i]) end
    if rank then
      redis.call('ZREM', queue, waiter); redis.call('ZREM', alive, waiter)
    end
    keep()
    signal(ARGV[4])
    return { 1, held + n }
  end
  if may_queue then
    if not rank then
      local seq = redis.call('HINCRBY', meta, 'seq', 1)
      redis.call('ZADD', queue, seq, waiter)
    end
    redis.call('ZADD', alive, now + lease, waiter)
    keep()
  end
  return { 0, next_expiry() }
elseif mode == 'leave' then
  local removed = redis.call('ZREM', queue, ARGV[5])
  redis.call('ZREM', alive, ARGV[5])
  signal(ARGV[4])
  return { removed, 0 }
elseif mode == 'release' then
  local removed = 0
  for i = 5, #ARGV do removed = removed + redis.call('ZREM', holders, ARGV[i]) end
  if removed > 0 then redis.call('PUBLISH', ARGV[4], 'go') end
  return { removed, 0 }
elseif mode == 'renew' then
  local waiters = tonumber(ARGV[4])
  for i = 5, 4 + waiters do redis.call('ZADD', alive, 'XX', now + lease, ARGV[i]) end
  local lost = {}
  for i = 5 + waiters, #ARGV do
    if redis.call('ZADD', holders, 'XX', 'CH', now + lease, ARGV[i]) == 0 then
      if not redis.call('ZSCORE', holders, ARGV[i]) then lost[#lost + 1] = ARGV[i] end
    end
  end
  if #ARGV >= 5 then keep() end
  return { 2, lost }
elseif mode == 'peek' then
  return { 3, redis.call('ZCARD', holders), redis.call('ZCARD', queue) }
end
return redis.error_reply('unknown mode ' .. mode)
