-- repair_stock.lua: reconcile's repair. Sets a sale's stock to the value rebuilt from PostgreSQL,
-- only if Redis has not moved since reconcile read it, BEFORE it read PostgreSQL: the stock and
-- the restock count as seen then, and no transaction in flight then or now.
-- Why that is enough: the stock goes down only by reserve.lua, which also adds to the due set, and
-- up only by complete.lua (a rejected unit), restock.lua (a returned hold) and this script, which
-- all count it in KEYS[3]. A due set empty now and at the snapshot, with the stock and the count
-- unchanged, means no unit moved in Redis since the snapshot: every order PostgreSQL counted was
-- already taken in Redis then, and a cancel it counted was either back in Redis before the
-- snapshot or is still an open return (which reconcile refuses before calling this script).
--
-- KEYS[1]  {s:<sale>}:stock
-- KEYS[2]  {s:<sale>}:due
-- KEYS[3]  {s:<sale>}:restocks   counts every raise or repair of the stock
-- ARGV[1]  stock rebuilt from PostgreSQL (total - live orders)
-- ARGV[2]  pub/sub channel of the sale ({s:<sale>}:events)
-- ARGV[3]  the stock seen at the snapshot ("" when the key was missing)
-- ARGV[4]  the restock count seen at the snapshot (0 when the key was missing)
--
-- Replies:
--   {"REPAIRED", old}     old is the value before (-1 when the key was missing)
--   {"IN_FLIGHT", n}      n transactions in flight: nothing changed
--   {"MOVED"}             the stock or the restock count changed since the snapshot: nothing changed

local n = redis.call('ZCARD', KEYS[2])
if n > 0 then
  return {'IN_FLIGHT', n}
end
local stock = redis.call('GET', KEYS[1])
local restocks = tonumber(redis.call('GET', KEYS[3]) or '0')
if (stock or '') ~= ARGV[3] or restocks ~= tonumber(ARGV[4]) then
  return {'MOVED'}
end
local old = tonumber(stock or '-1')
redis.call('SET', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[3])
if tonumber(ARGV[1]) > 0 and old <= 0 then
  redis.call('PUBLISH', ARGV[2], 'restocked')
elseif tonumber(ARGV[1]) == 0 and old ~= 0 then
  redis.call('PUBLISH', ARGV[2], 'sold_out')
end
return {'REPAIRED', old}
