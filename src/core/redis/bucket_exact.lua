-- The same in bignums, on absolute ticks.
local tpn = big(ARGV[3])
local per_second = mul(tpn, big('1000000000'))
local now = mul(big(now_ns), tpn)
local tat = add(mul(big(ts), per_second), big(tf))
local need, slack = big(ARGV[4]), big(ARGV[5])
local start = cmp(tat, now) > 0 and tat or now
local wait = sub(sub(start, slack), now)

local function split(x)
  local text = str(x)
  local q = div_small(big(#text > 9 and string.sub(text, 1, -10) or '0'), tpn_n)
  return str(q) .. ':' .. str(sub(x, mul(q, per_second)))
end
local function store(new_tat)
  local ahead = sub(new_tat, now)
  if is_zero(ahead) then
    redis.call('DEL', KEYS[1])
    return
  end
  keep(split(new_tat), approx(ahead) / approx(tpn) / 1e6)
end

if mode == 'peek' then return { 3, str(wait), str(sub(tat, now)), now_ns } end
if mode == 'cancel' then
  if tat_text and tat_text == ARGV[8] then
    store(sub(tat, need))
    return { 4, '1', '0', now_ns }
  end
  return { 4, '0', '0', now_ns }
end
local new_tat = add(start, need)
if is_zero(wait) then
  store(new_tat)
  return { 1, '0', split(new_tat), now_ns }
end
if ARGV[6] ~= '-' and cmp(wait, big(ARGV[6])) > 0 then return { 0, str(wait), '0', now_ns } end
if ARGV[7] ~= '-' and cmp(sub(tat, now), big(ARGV[7])) > 0 then
  return { 0, str(wait), '0', now_ns }
end
store(new_tat)
return { 2, str(wait), split(new_tat), now_ns }
