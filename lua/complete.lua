-- complete.lua: ends a transaction once its branch is committed in PostgreSQL. Idempotent: the
-- first call marks it `succeeded`, every later call changes nothing.
--
-- What happens to the unit the reservation took depends on what PostgreSQL said:
--   a fresh `pending` order: the unit is the order's.
--   a fresh `rejected` order: PostgreSQL had no unit left, so Redis handed out one it did not
--     have (it had lost writes, or was rebuilt too high). The unit does NOT go back: the stock
--     becomes what PostgreSQL has left, 0, and `sold_out` goes out, so the crowd is refused from
--     memory again instead of reaching the database. Guard (as repair_stock.lua's): only if the
--     stock was not raised since the reservation (the restock count kept in the record); a unit
--     returned since then may be real, so the stock is left as it is.
--   a repeat (PostgreSQL had this gid's order already): when no recovery attempt ever claimed
--     the transaction, the order predates it (Redis had lost the gid's barrier), so the unit
--     this reservation took is given back; a claimed one is the same transaction run again,
--     whose unit is the order's.
--
-- KEYS[1]  {s:<sale>}:stock
-- KEYS[2]  {s:<sale>}:tx:<gid>
-- KEYS[3]  {s:<sale>}:due
-- KEYS[4]  {s:<sale>}:restocks     counts every raise of the stock (read by repair_stock.lua)
-- ARGV[1]  gid
-- ARGV[2]  the order's status as the branch found or wrote it: "pending" or "rejected"
-- ARGV[3]  order id
-- ARGV[4]  pub/sub channel of the sale ({s:<sale>}:events)
-- ARGV[5]  "fresh" (the branch wrote the order now) or "repeat" (it found it)
--
-- Replies:
--   {"COMPLETED", returned, closed}   marked succeeded now; returned = 1 when a unit went back
--                                     to stock, closed = 1 when the stock was set to 0
--   {"ALREADY"}                       an earlier call completed it
--   {"MISSING"}                       no transaction record (Redis lost it): nothing changed

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
local closed = 0
if ARGV[5] == 'repeat' then
  if tonumber(redis.call('HGET', KEYS[2], 'attempts') or '0') == 0 then
    local left = redis.call('INCR', KEYS[1])
    redis.call('INCR', KEYS[4])
    returned = 1
    if left == 1 then
      redis.call('PUBLISH', ARGV[4], 'restocked')
    end
  end
elseif ARGV[2] == 'rejected' then
  local seen = redis.call('HGET', KEYS[2], 'restocks')
  local restocks = redis.call('GET', KEYS[4]) or '0'
  local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
  if seen and tonumber(seen) == tonumber(restocks) and stock > 0 then
    redis.call('SET', KEYS[1], 0)
    redis.call('PUBLISH', ARGV[4], 'sold_out')
    closed = 1
  end
end
redis.call('HSET', KEYS[2], 'state', 'succeeded', 'outcome', ARGV[2], 'order', ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[1])
return {'COMPLETED', returned, closed}
