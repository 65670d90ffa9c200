-- Exact integers for the bucket's tick arithmetic (Lua numbers are doubles):
-- little-endian limbs of 10^7, so a limb product stays below 2^53.
local BASE = 10000000
local function trim(a)
  while #a > 1 and a[#a] == 0 do a[#a] = nil end
  return a
end
local function big(text)
  local limbs, i = {}, #text
  while i >= 1 do
    local j = math.max(1, i - 6)
    limbs[#limbs + 1] = tonumber(string.sub(text, j, i))
    i = j - 1
  end
  return trim(limbs)
end
local function str(a)
  local parts = { tostring(a[#a]) }
  for i = #a - 1, 1, -1 do parts[#parts + 1] = string.format('%07d', a[i]) end
  return table.concat(parts)
end
local function cmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  for i = #a, 1, -1 do
    if a[i] ~= b[i] then return a[i] < b[i] and -1 or 1 end
  end
  return 0
end
local function add(a, b)
  local r, carry = {}, 0
  for i = 1, math.max(#a, #b) do
    local s = (a[i] or 0) + (b[i] or 0) + carry
    if s >= BASE then r[i] = s - BASE; carry = 1 else r[i] = s; carry = 0 end
  end
  if carry > 0 then r[#r + 1] = carry end
  return r
end
-- a - b, or 0 when b >= a.
local function sub(a, b)
  if cmp(a, b) <= 0 then return { 0 } end
  local r, borrow = {}, 0
  for i = 1, #a do
    local s = a[i] - (b[i] or 0) - borrow
    if s < 0 then r[i] = s + BASE; borrow = 1 else r[i] = s; borrow = 0 end
  end
  return trim(r)
end
local function mul(a, b)
  local r = {}
  for i = 1, #a + #b do r[i] = 0 end
  for i = 1, #a do
    local carry = 0
    for j = 1, #b do
      local t = r[i + j - 1] + a[i] * b[j] + carry
      carry = math.floor(t / BASE)
      r[i + j - 1] = t - carry * BASE
    end
    r[i + #b] = r[i + #b] + carry
  end
  return trim(r)
end
local function approx(a)
  local x = 0
  for i = #a, 1, -1 do x = x * BASE + a[i] end
  return x
end
local function is_zero(a) return #a == 1 and a[1] == 0 end
-- floor(a / d) for a small d (d * 10 < 2^53), digit by digit.
local function div_small(a, d)
  local text, digits, rem = str(a), {}, 0
  for i = 1, #text do
    rem = rem * 10 + string.byte(text, i) - 48
    local q = math.floor(rem / d)
    digits[i] = q
    rem = rem - q * d
  end
  local text = string.gsub(table.concat(digits), '^0+', '')
  return big(text == '' and '0' or text)
end
