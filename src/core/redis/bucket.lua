-- GCRA, as the local bucket keeps it: one theoretical arrival time (`tat`)
-- per key in ticks (1/tpn ns), exact. Time is Redis's own.
-- KEYS[1]: the key, a string "cfg|s:f": the limit's settings, and its tat
-- as f ticks past second s (0 <= f < S, S = 10^9 tpn ticks a second).
-- ARGV: mode (take|peek|cancel), cfg, ticks per ns, ticks of the n tokens,
-- slack ticks (burst - n tokens; 0 for a leaky bucket), most wait in ticks
-- or '-', most queued ticks (a leaky bucket's capacity) or '-', and for a
-- cancel the tat its booking left.
-- Returns {status, wait ticks, tat (or for a peek tat - now), redis now ns}:
-- 1 taken, 2 booked (its turn is wait ticks away), 0 refused, 3 peeked,
-- 4 cancelled (wait '1' if given back), -1 the limit has other settings.
--
-- Lua numbers are doubles, exact below 2^53. Counted from the start of the
-- current second, every number of a usual limit stays below 2^52, and the
-- script computes in plain numbers; otherwise (a rate with many digits, a
-- turn booked months ahead) in the exact bignums of bucket_exact.lua. Both
-- give the same answers.
local t = redis.call('TIME')
local sec, usec = tonumber(t[1]), tonumber(t[2])
local now_ns = t[1] .. string.format('%06d', usec) .. '000'
local value = redis.call('GET', KEYS[1])
local cfg, tat_text
if value then cfg, tat_text = string.match(value, '^(.*)|(%d+:%d+)$') end
if value and cfg ~= ARGV[2] then return { -1, cfg or value, '0', now_ns } end
local mode = ARGV[1]
local ts, tf = '0', '0'
if tat_text then ts, tf = string.match(tat_text, '^(%d+):(%d+)$') end

local function fmt(x) return string.format('%.0f', x) end
local function small(text) return text == '-' or #text <= 15 end
local tpn_n = tonumber(ARGV[3])
local S = tpn_n * 1e9
local fast = #ARGV[3] <= 6 and small(ARGV[4]) and small(ARGV[5]) and small(ARGV[6])
  and small(ARGV[7]) and #ts <= 15 and #tf <= 15
local reach = math.floor(2251799813685248 / S) - 1 -- seconds that stay below 2^51
if fast and tat_text then fast = math.abs(tonumber(ts) - sec) <= reach end

local function keep(new_tat_text, ahead_ms)
  -- Gone once full again; a millisecond late, never early.
  redis.call('SET', KEYS[1], ARGV[2] .. '|' .. new_tat_text, 'PX', math.ceil(ahead_ms) + 1)
end

if fast then
  -- Ticks since the start of second `sec`.
  local now = usec * 1000 * tpn_n
  local tat = tat_text and (tonumber(ts) - sec) * S + tonumber(tf) or 0
  local need, slack = tonumber(ARGV[4]), tonumber(ARGV[5])
  local start = tat > now and tat or now
  local wait = math.max(start - slack - now, 0)
  local function split(x)
    local q = math.floor(x / S)
    local r = x - q * S
    if r < 0 then q, r = q - 1, r + S elseif r >= S then q, r = q + 1, r - S end
    return fmt(sec + q) .. ':' .. fmt(r)
  end
  local function store(new_tat)
    local ahead = new_tat - now
    if ahead <= 0 then
      redis.call('DEL', KEYS[1])
      return
    end
    keep(split(new_tat), ahead / tpn_n / 1e6)
  end
  if mode == 'peek' then return { 3, fmt(wait), fmt(math.max(tat - now, 0)), now_ns } end
  if mode == 'cancel' then
    -- Only the last booking can go back: turns booked after it keep theirs.
    if tat_text and tat_text == ARGV[8] then
      store(math.max(tat - need, 0))
      return { 4, '1', '0', now_ns }
    end
    return { 4, '0', '0', now_ns }
  end
  local new_tat = start + need
  if wait == 0 then
    store(new_tat)
    return { 1, '0', split(new_tat), now_ns }
  end
  if ARGV[6] ~= '-' and wait > tonumber(ARGV[6]) then return { 0, fmt(wait), '0', now_ns } end
  if ARGV[7] ~= '-' and tat - now > tonumber(ARGV[7]) then return { 0, fmt(wait), '0', now_ns } end
  store(new_tat)
  return { 2, fmt(wait), split(new_tat), now_ns }
end
