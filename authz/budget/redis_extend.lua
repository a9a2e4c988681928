-- Extend: KEYS as in reserve. ARGV: ttl ms, id. A call still running pushes
-- its reservation's expiry to now + ttl (the server's clock), so a stream
-- that outlives budgets.reservation_ttl keeps what it holds. Returns 1, or
-- 0 when the reservation is gone: it expired and was given back already,
-- and the call's settlement then adds only what it used.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[1]), ARGV[2])
return 1
