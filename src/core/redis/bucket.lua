-- GCRA, as the local bucket keeps it: one theoretical arrival time (`tat`)
-- per key in ticks (1/tpn ns), exact. Time is Redis's own.
-- KEYS[1]: the key's hash {cfg, tat}.
-- ARGV: mode (take|peek|cancel), cfg, ticks per ns, ticks of the n tokens,
-- slack ticks (burst - n tokens; 0 for a leaky bucket), most wait in ticks
-- or '-', most queued ticks (a leaky bucket's capacity) or '-', and for a
-- cancel the tat its booking left.
-- Returns {status, wait ticks, tat or tat - now, redis now ns}:
-- 1 taken, 2 booked (its turn is wait ticks away), 0 refused, 3 peeked,
-- 4 cancelled (wait '1' if given back), -1 the limit has other settings.
local t = redis.call('TIME')
local now_ns = t[1] .. string.format('%06d', tonumber(t[2])) .. '000'
local tpn = big(ARGV[3])
local now = mul(big(now_ns), tpn)
local stored = redis.call('HMGET', KEYS[1], 'cfg', 'tat')
if stored[1] and stored[1] ~= ARGV[2] then return { -1, stored[1], '0', now_ns } end
local tat = stored[2] and big(stored[2]) or { 0 }
local need, slack = big(ARGV[4]), big(ARGV[5])
local start = cmp(tat, now) > 0 and tat or now
local wait = sub(sub(start, slack), now)
local mode = ARGV[1]

local function store(new_tat)
  local ahead = sub(new_tat, now)
  if is_zero(ahead) then
    redis.call('DEL', KEYS[1])
    return
  end
  redis.call('HSET', KEYS[1], 'cfg', ARGV[2], 'tat', str(new_tat))
  -- Gone once full again; a millisecond late, never early.
  local ms = math.ceil(approx(ahead) / approx(tpn) / 1e6) + 1
  redis.call('PEXPIRE', KEYS[1], ms)
end

if mode == 'peek' then return { 3, str(wait), str(sub(tat, now)), now_ns } end
if mode == 'cancel' then
  -- Only the last booking can go back: turns booked after it keep theirs.
  if stored[2] and stored[2] == ARGV[8] then
    store(sub(tat, need))
    return { 4, '1', '0', now_ns }
  end
  return { 4, '0', '0', now_ns }
end
local new_tat = add(start, need)
if is_zero(wait) then
  store(new_tat)
  return { 1, '0', str(new_tat), now_ns }
end
if ARGV[6] ~= '-' and cmp(wait, big(ARGV[6])) > 0 then return { 0, str(wait), '0', now_ns } end
if ARGV[7] ~= '-' and cmp(sub(tat, now), big(ARGV[7])) > 0 then
  return { 0, str(wait), '0', now_ns }
end
store(new_tat)
return { 2, str(wait), str(new_tat), now_ns }
