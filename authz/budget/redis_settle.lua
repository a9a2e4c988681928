-- Settle: KEYS as in reserve. ARGV: id, kinds, then per kind: window (-1:
-- not tracked), reserved, used. A reservation that expired was given back
-- already: then only what was used is added. Windows that passed are left.
local id = ARGV[1]
local n = tonumber(ARGV[2])
local held = redis.call('HEXISTS', KEYS[3], id) == 1
for i = 0, n - 1 do
  local w, res, use = ARGV[3 + 3 * i], tonumber(ARGV[4 + 3 * i]), tonumber(ARGV[5 + 3 * i])
  if w ~= '-1' then
    local delta = use
    if held then delta = use - res end
    if delta ~= 0 then
      local cur = redis.call('HMGET', KEYS[1], i .. 'w', i .. 'n')
      if cur[1] and cur[1] == w then
        local v = tonumber(cur[2] or '0') + delta
        if v < 0 then v = 0 end
        redis.call('HSET', KEYS[1], i .. 'n', v)
      end
    end
  end
end
redis.call('HDEL', KEYS[3], id)
redis.call('ZREM', KEYS[2], id)
return 1
