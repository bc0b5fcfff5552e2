-- The Lua equivalent of SECKILL.RESERVE, as public seckill projects write it: window and
-- stock check, per-user dedupe, decrement, record the buyer, XADD. Baseline for `make bench`.
-- KEYS: meta hash, buyers hash, stream. ARGV: activity, user, qty.
local meta = redis.call('HMGET', KEYS[1], 'remaining', 'limit', 'start', 'end', 'product', 'price')
local remaining = tonumber(meta[1])
if not remaining then return redis.error_reply('NOACTIVITY activity does not exist') end
local qty = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now < tonumber(meta[3]) then return redis.error_reply('NOTSTARTED') end
local e = tonumber(meta[4])
if e ~= 0 and now >= e then return redis.error_reply('ENDED') end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 or qty > tonumber(meta[2]) then
  return redis.error_reply('LIMIT')
end
if remaining < qty then return redis.error_reply('SOLDOUT') end
redis.call('HINCRBY', KEYS[1], 'remaining', -qty)
redis.call('HINCRBY', KEYS[1], 'reservations', 1)
redis.call('HSET', KEYS[2], ARGV[2], qty)
local id = redis.call('XADD', KEYS[3], '*', 'activity', ARGV[1], 'product', meta[5],
  'user', ARGV[2], 'qty', qty, 'price', meta[6], 'ts', now)
return {id, remaining - qty}
