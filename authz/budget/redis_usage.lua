-- Usage: KEYS as in reserve. ARGV: kinds, then per kind its period and
-- limit. Gives back expired reservations first; returns used per kind in
-- the current windows (0 for kinds without a limit).
local t = redis.call('TIME')
local sec = tonumber(t[1])
expire_stale(sec * 1000 + math.floor(tonumber(t[2]) / 1000))
local n = tonumber(ARGV[1])
local out = {}
for i = 0, n - 1 do
  local per, lim = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  local u = 0
  if lim > 0 then
    local cur = redis.call('HMGET', KEYS[1], i .. 'w', i .. 'n')
    if cur[1] and tonumber(cur[1]) == window(per, sec) then u = tonumber(cur[2] or '0') end
  end
  out[#out + 1] = u
end
return out
