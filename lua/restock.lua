-- restock.lua: the Redis side of a unit's return (the second two-phase message), exactly once:
-- the return barrier makes a repeated call (recovery after a crash) a no-op. Returned stock
-- re-opens a sold-out sale: reaching 1 publishes `restocked` so every edge clears its flag.
--
-- KEYS[1]  {s:<sale>}:stock
-- KEYS[2]  {s:<sale>}:r:<order id>   return barrier
-- KEYS[3]  {s:<sale>}:restocks        counts every raise of the stock (read by repair_stock.lua)
-- ARGV[1]  pub/sub channel of the sale ({s:<sale>}:events)
--
-- Replies:
--   {"RESTOCKED", left}   the unit is back; left units now
--   {"ALREADY"}           an earlier call returned it

if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'ALREADY'}
end
redis.call('SET', KEYS[2], 'returned')
local left = redis.call('INCR', KEYS[1])
redis.call('INCR', KEYS[3])
if left == 1 then
  redis.call('PUBLISH', ARGV[1], 'restocked')
end
return {'RESTOCKED', left}
