-- Shared by the budget scripts (prepended to each): windows from the
-- server's clock, in UTC, the way budget.Window computes them in Go.
-- period: 0 none, 1 second, 2 minute, 3 UTC day, 4 UTC month.
local function month_index(days)
  -- civil_from_days (H. Hinnant), days since 1970-01-01 -> year*12 + month-1
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m
  if mp < 10 then m = mp + 3 else m = mp - 9 end
  if m <= 2 then y = y + 1 end
  return y * 12 + (m - 1)
end

local function window(period, sec)
  if period == 1 then return sec end
  if period == 2 then return math.floor(sec / 60) end
  if period == 3 then return math.floor(sec / 86400) end
  if period == 4 then return month_index(math.floor(sec / 86400)) end
  return 0
end

-- give back an expired reservation's amounts, where their window still runs
local function refund(ckey, enc)
  for k, w, a in string.gmatch(enc, '(%d+):(%-?%d+):(%d+)') do
    local cw = redis.call('HGET', ckey, k .. 'w')
    if cw and cw == w then
      local n = tonumber(redis.call('HGET', ckey, k .. 'n') or '0') - tonumber(a)
      if n < 0 then n = 0 end
      redis.call('HSET', ckey, k .. 'n', n)
    end
  end
end

local function expire_stale(now)
  local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 64)
  for _, rid in ipairs(stale) do
    local enc = redis.call('HGET', KEYS[3], rid)
    if enc then refund(KEYS[1], enc) end
    redis.call('ZREM', KEYS[2], rid)
    redis.call('HDEL', KEYS[3], rid)
  end
end

local KEEP = 2851200000 -- 33 days: a month's window and then some
