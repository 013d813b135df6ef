-- repair_stock.lua: reconcile's repair. Sets a sale's stock to the value rebuilt from PostgreSQL,
-- but only while no transaction is in flight (the due set is empty), checked in the same script.
--
-- KEYS[1]  {s:<sale>}:stock
-- KEYS[2]  {s:<sale>}:due
-- ARGV[1]  stock rebuilt from PostgreSQL (total - live orders)
-- ARGV[2]  pub/sub channel of the sale ({s:<sale>}:events)
--
-- Replies:
--   {"REPAIRED", old}     old is the value before (-1 when the key was missing)
--   {"IN_FLIGHT", n}      n transactions in flight: nothing changed

local n = redis.call('ZCARD', KEYS[2])
if n > 0 then
  return {'IN_FLIGHT', n}
end
local old = tonumber(redis.call('GET', KEYS[1]) or '-1')
redis.call('SET', KEYS[1], ARGV[1])
if tonumber(ARGV[1]) > 0 and old <= 0 then
  redis.call('PUBLISH', ARGV[2], 'restocked')
elseif tonumber(ARGV[1]) == 0 and old ~= 0 then
  redis.call('PUBLISH', ARGV[2], 'sold_out')
end
return {'REPAIRED', old}
