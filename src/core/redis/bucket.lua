-- GCRA, as the local bucket keeps it: one theoretical arrival time (`tat`)
-- per key in ticks (1/tpn ns), exact. Time is Redis's own.
--
-- One call decides for any number of keys of one limit (all in KEYS, one
-- hash tag), in order: concurrent callers share a round trip.
-- KEYS[i]: a key, stored as the string "s:f|cfg": its tat as f ticks past
-- second s (0 <= f < S, S = 10^9 tpn ticks a second), and the limit's settings.
-- ARGV[1]: cfg; ARGV[2]: ticks per ns; then six for each key: mode
-- (take|peek|cancel), ticks of the n tokens, slack ticks (burst - n tokens; 0
-- for a leaky bucket), most wait in ticks or '-', most queued ticks (a leaky
-- bucket's capacity) or '-', and for a cancel the tat its booking left.
-- Returns {redis now ns, then for each key status, wait ticks, tat (for a
-- peek, tat - now)}. Statuses: 1 taken, 2 booked (its turn is wait ticks
-- away), 0 refused, 3 peeked, 4 cancelled (wait '1' if given back), -1 the
-- limit has other settings (wait: the stored ones).
--
-- Lua numbers are doubles, exact below 2^53. Counted from the start of the
-- current second, every number of a usual limit stays below 2^52, and the
-- script computes in plain numbers; otherwise (a rate with many digits, a
-- turn booked months ahead) in exact bignums, loaded only then. Both give
-- the same answers.
local t = redis.call('TIME')
local sec, usec = tonumber(t[1]), tonumber(t[2])
local now_ns = t[1] .. string.format('%06d', usec) .. '000'
local CFG, TPN = ARGV[1], ARGV[2]
local tpn_n = tonumber(TPN)
local S = tpn_n * 1e9
local reach = math.floor(2251799813685248 / S) - 1 -- seconds that stay below 2^51

-- An integer's digits (tostring keeps 14 significant digits only).
local function fmt(x)
  if x < 1e14 then return tostring(x) end
  return string.format('%.0f', x)
end
local function small(text) return text == '-' or #text <= 15 end
local function keep(key, tat_text, ahead_ms)
  -- Gone once full again; a millisecond late, never early.
  redis.call('SET', key, tat_text .. '|' .. CFG, 'PX', math.ceil(ahead_ms) + 1)
end

-- Plain numbers count ticks since the start of second `sec`.
local now = usec * 1000 * tpn_n
local function split(x)
  local q = math.floor(x / S)
  local r = x - q * S
  if r < 0 then q, r = q - 1, r + S elseif r >= S then q, r = q + 1, r - S end
  return fmt(sec + q) .. ':' .. fmt(r)
end
local function store(key, new_tat)
  local ahead = new_tat - now
  if ahead <= 0 then
    redis.call('DEL', key)
    return
  end
  keep(key, split(new_tat), ahead / tpn_n / 1e6)
end

-- One decision in plain numbers.
local function plain(key, mode, need, slack, most_wait, most_queued, booking, tat_text, ts, tf)
  local tat = tat_text and (tonumber(ts) - sec) * S + tonumber(tf) or 0
  need, slack = tonumber(need), tonumber(slack)
  local start = tat > now and tat or now
  local wait = math.max(start - slack - now, 0)
  if mode == 'peek' then return 3, fmt(wait), fmt(math.max(tat - now, 0)) end
  if mode == 'cancel' then
    -- Only the last booking can go back: turns booked after it keep theirs.
    if tat_text and tat_text == booking then
      store(key, math.max(tat - need, 0))
      return 4, '1', '0'
    end
    return 4, '0', '0'
  end
  local new_tat = start + need
  if wait == 0 then
    store(key, new_tat)
    return 1, '0', split(new_tat)
  end
  if most_wait ~= '-' and wait > tonumber(most_wait) then return 0, fmt(wait), '0' end
  if most_queued ~= '-' and tat - now > tonumber(most_queued) then return 0, fmt(wait), '0' end
  store(key, new_tat)
  return 2, fmt(wait), split(new_tat)
end

-- The same decision in bignums, on absolute ticks.
local exact
local function load_exact()
