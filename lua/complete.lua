-- complete.lua: ends a transaction once its branch is committed in PostgreSQL. Idempotent: the
-- first call marks it `succeeded` (and gives the unit back when the database rejected the order),
-- every later call changes nothing.
--
-- KEYS[1]  {s:<sale>}:stock
-- KEYS[2]  {s:<sale>}:tx:<gid>
-- KEYS[3]  {s:<sale>}:due
-- KEYS[4]  {s:<sale>}:restocks     counts every raise of the stock (read by repair_stock.lua)
-- ARGV[1]  gid
-- ARGV[2]  outcome of the branch: "pending" (a live order) or "rejected" (the unit goes back)
-- ARGV[3]  order id
-- ARGV[4]  pub/sub channel of the sale ({s:<sale>}:events)
--
-- Replies:
--   {"COMPLETED", returned}   marked succeeded now; returned = 1 when a unit went back to stock
--   {"ALREADY"}               an earlier call completed it
--   {"MISSING"}               no transaction record (Redis lost it): nothing changed

local state = redis.call('HGET', KEYS[2], 'state')
if not state then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return {'MISSING'}
end
if state == 'succeeded' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return {'ALREADY'}
end

local returned = 0
if ARGV[2] == 'rejected' then
  local left = redis.call('INCR', KEYS[1])
  redis.call('INCR', KEYS[4])
  returned = 1
  if left == 1 then
    redis.call('PUBLISH', ARGV[4], 'restocked')
  end
end
redis.call('HSET', KEYS[2], 'state', 'succeeded', 'outcome', ARGV[2], 'order', ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[1])
return {'COMPLETED', returned}
