  local tpn = big(TPN)
  local per_second = mul(tpn, big('1000000000'))
  local now = mul(big(now_ns), tpn)
  local function split(x)
    local text = str(x)
    local q = div_small(big(#text > 9 and string.sub(text, 1, -10) or '0'), tpn_n)
    return str(q) .. ':' .. str(sub(x, mul(q, per_second)))
  end
  return function(key, mode, need, slack, most_wait, most_queued, booking, tat_text, ts, tf)
    local tat = add(mul(big(ts), per_second), big(tf))
    need, slack = big(need), big(slack)
    local start = cmp(tat, now) > 0 and tat or now
    local wait = sub(sub(start, slack), now)
    local function store(new_tat)
      local ahead = sub(new_tat, now)
      if is_zero(ahead) then
        redis.call('DEL', key)
        return
      end
      keep(key, split(new_tat), approx(ahead) / approx(tpn) / 1e6)
    end
    if mode == 'peek' then return 3, str(wait), str(sub(tat, now)) end
    if mode == 'cancel' then
      if tat_text and tat_text == booking then
        store(sub(tat, need))
        return 4, '1', '0'
      end
      return 4, '0', '0'
    end
    local new_tat = add(start, need)
    if is_zero(wait) then
      store(new_tat)
      return 1, '0', split(new_tat)
    end
    if most_wait ~= '-' and cmp(wait, big(most_wait)) > 0 then return 0, str(wait), '0' end
    if most_queued ~= '-' and cmp(sub(tat, now), big(most_queued)) > 0 then
      return 0, str(wait), '0'
    end
    store(new_tat)
    return 2, str(wait), split(new_tat)
  end
end

local out = { now_ns }
for i = 1, #KEYS do
  local key, j = KEYS[i], 2 + (i - 1) * 6
  local mode, need, slack = ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]
  local most_wait, most_queued, booking = ARGV[j + 4], ARGV[j + 5], ARGV[j + 6]
  local value = redis.call('GET', key)
  local cfg, tat_text, ts, tf = nil, nil, '0', '0'
  if value then
    -- "s:f|cfg", read with plain finds: no pattern to backtrack.
    local colon, bar = string.find(value, ':', 1, true), string.find(value, '|', 1, true)
    if colon and bar and colon < bar then
      ts, tf = string.sub(value, 1, colon - 1), string.sub(value, colon + 1, bar - 1)
      tat_text, cfg = string.sub(value, 1, bar - 1), string.sub(value, bar + 1)
    end
  end
  local status, a, b
  if value and cfg ~= CFG then
    status, a, b = -1, cfg or value, '0'
  else
    local fast = #TPN <= 6 and small(need) and small(slack) and small(most_wait)
      and small(most_queued) and #ts <= 15 and #tf <= 15
    if fast and tat_text then fast = math.abs(tonumber(ts) - sec) <= reach end
    local decide = plain
    if not fast then
      exact = exact or load_exact()
      decide = exact
    end
    status, a, b = decide(key, mode, need, slack, most_wait, most_queued, booking, tat_text, ts, tf)
  end
  out[#out + 1] = status
  out[#out + 1] = a
  out[#out + 1] = b
end
return out
