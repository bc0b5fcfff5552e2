-- The minimal Lua reservation most seckill tutorials show: stock in a string, buyers in a set,
-- GET the stock, SISMEMBER the buyer, DECRBY, SADD, XADD the order message. No sale window,
-- no per-user quantity, no product check: less than SECKILL.RESERVE does, as a lower bound
-- for what a script costs. Same six-field stream entry as the module's.
-- KEYS: stock, buyers, stream. ARGV: activity, user, qty, product, price, ts (unix ms).
local stock = tonumber(redis.call('GET', KEYS[1]))
if not stock then return redis.error_reply('NOACTIVITY activity does not exist') end
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 then return redis.error_reply('LIMIT') end
local qty = tonumber(ARGV[3])
if stock < qty then return redis.error_reply('SOLDOUT') end
local left = redis.call('DECRBY', KEYS[1], qty)
redis.call('SADD', KEYS[2], ARGV[2])
local id = redis.call('XADD', KEYS[3], '*', 'activity', ARGV[1], 'product', ARGV[4],
  'user', ARGV[2], 'qty', qty, 'price', ARGV[5], 'ts', ARGV[6])
return {id, left}
