-- heal_finish.lua: the last step of a heal: sets the stock rebuilt from PostgreSQL, moves the
-- fence to a new epoch (every fence handed out from now on is above any an origin saw before the
-- loss, so the loss is not noticed again), counts the change as a raise (so that a reconcile
-- repair reading Redis meanwhile sees it moved), drops the lock and tells the edges. Guard: the
-- restock count is still what heal_begin.lua saw, so no unit came back during the heal (a
-- return's INCR would be lost under the SET); otherwise nothing changes and the healer reads
-- PostgreSQL again.
--
-- KEYS[1]  {s:<sale>}:healing
-- KEYS[2]  {s:<sale>}:stock
-- KEYS[3]  {s:<sale>}:fence
-- KEYS[4]  {s:<sale>}:restocks
-- ARGV[1]  the healer's token
-- ARGV[2]  the stock rebuilt from PostgreSQL (total - sold - units in flight without an order)
-- ARGV[3]  the restock count heal_begin.lua answered
-- ARGV[4]  pub/sub channel of the sale ({s:<sale>}:events)
--
-- Replies:
--   {"HEALED", stock}   the stock is set, the lock dropped
--   {"MOVED", restocks} a unit came back during the heal: nothing changed, the lock is kept;
--                       restocks is the count now, for the next try
--   {"LOST"}            the lock is not this healer's any more: nothing changed

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {'LOST'}
end
local restocks = tonumber(redis.call('GET', KEYS[4]) or '0')
if restocks ~= tonumber(ARGV[3]) then
  return {'MOVED', restocks}
end
local stock = math.max(0, tonumber(ARGV[2]))
local epoch = math.floor(tonumber(redis.call('GET', KEYS[3]) or '0') / 4294967296)
redis.call('SET', KEYS[2], stock)
redis.call('SET', KEYS[3], (epoch + 1) * 4294967296)
redis.call('INCR', KEYS[4])
redis.call('DEL', KEYS[1])
if stock == 0 then
  redis.call('PUBLISH', ARGV[4], 'sold_out')
else
  redis.call('PUBLISH', ARGV[4], 'restocked')
end
return {'HEALED', stock}
