-- reserve.lua: phase 1 of a purchase's two-phase message, in ONE round trip.
-- Checks the barrier BEFORE the stock, so that a retry arriving after sell-out is answered as the
-- duplicate it is and never aborts (or costs) anything.
--
-- KEYS[1]  {s:<sale>}:stock        units left (integer)
-- KEYS[2]  {s:<sale>}:b:<gid>      barrier of the transaction
-- KEYS[3]  {s:<sale>}:tx:<gid>     transaction record (hash)
-- KEYS[4]  {s:<sale>}:due          due set: gid scored by the time recovery may take it over (ms)
-- ARGV[1]  gid (<sale>/<uid>)
-- ARGV[2]  uid
-- ARGV[3]  branch timeout in ms (how long before recovery takes the transaction over)
-- ARGV[4]  pub/sub channel of the sale ({s:<sale>}:events)
--
-- Replies:
--   {"RESERVED", left}                       one unit taken; transaction `submitted` and due
--   {"DUPLICATE", state, outcome, order_id}  the barrier exists: the earlier transaction's state
--   {"SOLD_OUT"}                             no unit left; nothing written
--   {"UNKNOWN"}                              no stock key: the sale is not open in this Redis

if redis.call('EXISTS', KEYS[2]) == 1 then
  local tx = redis.call('HMGET', KEYS[3], 'state', 'outcome', 'order')
  return {'DUPLICATE', tx[1] or '', tx[2] or '', tx[3] or ''}
end

local stock = redis.call('GET', KEYS[1])
if not stock then
  return {'UNKNOWN'}
end
if tonumber(stock) <= 0 then
  return {'SOLD_OUT'}
end

local left = redis.call('DECR', KEYS[1])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[2], 'reserved')
redis.call('HSET', KEYS[3], 'state', 'submitted', 'uid', ARGV[2], 'created_ms', now_ms, 'attempts', 0)
redis.call('ZADD', KEYS[4], now_ms + tonumber(ARGV[3]), ARGV[1])
if left == 0 then
  redis.call('PUBLISH', ARGV[4], 'sold_out')
end
return {'RESERVED', left}
