-- Reserve: KEYS[1] counters (hash: <kind>w window, <kind>n used),
-- KEYS[2] reservations by expiry (zset, ms), KEYS[3] reservations (hash:
-- id -> "kind:window:amount,..."); all three share the {app} hash slot.
-- ARGV: ttl ms, id, kinds, then per kind: period, limit, amount.
-- Returns {1, now ms, window...} or {0, kind, window, used}.
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local id = ARGV[2]
local n = tonumber(ARGV[3])
expire_stale(now)
local wins, used = {}, {}
for i = 0, n - 1 do
  local per, lim, amt = tonumber(ARGV[4 + 3 * i]), tonumber(ARGV[5 + 3 * i]), tonumber(ARGV[6 + 3 * i])
  wins[i] = 0
  if lim > 0 then
    local w = window(per, sec)
    wins[i] = w
    local cur = redis.call('HMGET', KEYS[1], i .. 'w', i .. 'n')
    local u = 0
    if cur[1] and tonumber(cur[1]) == w then u = tonumber(cur[2] or '0') end
    if amt > 0 and u + amt > lim then return {0, i, w, u} end
    used[i] = u
  end
end
local enc = {}
for i = 0, n - 1 do
  local lim, amt = tonumber(ARGV[5 + 3 * i]), tonumber(ARGV[6 + 3 * i])
  if lim > 0 then
    redis.call('HSET', KEYS[1], i .. 'w', wins[i], i .. 'n', used[i] + amt)
    if amt > 0 then enc[#enc + 1] = i .. ':' .. wins[i] .. ':' .. amt end
  end
end
redis.call('PEXPIRE', KEYS[1], KEEP)
if #enc > 0 then
  redis.call('HSET', KEYS[3], id, table.concat(enc, ','))
  redis.call('ZADD', KEYS[2], now + ttl, id)
  redis.call('PEXPIRE', KEYS[2], KEEP)
  redis.call('PEXPIRE', KEYS[3], KEEP)
end
local out = {1, now}
for i = 0, n - 1 do out[#out + 1] = wins[i] end
return out
