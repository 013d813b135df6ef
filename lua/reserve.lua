-- reserve.lua: phase 1 of a purchase's two-phase message, in ONE round trip.
-- Checks the barrier BEFORE the stock, so that a retry arriving after sell-out is answered as the
-- duplicate it is and never aborts (or costs) anything.
--
-- KEYS[1]  {s:<sale>}:stock        units left (integer)
-- KEYS[2]  {s:<sale>}:b:<gid>      barrier of the transaction
-- KEYS[3]  {s:<sale>}:tx:<gid>     transaction record (hash)
-- KEYS[4]  {s:<sale>}:due          due set: gid scored by the time recovery may take it over (ms)
-- KEYS[5]  {s:<sale>}:healing      the heal lock: while it exists, no unit is handed out
-- KEYS[6]  {s:<sale>}:fence        counts the units handed out; a heal moves it to a new epoch
-- KEYS[7]  {s:<sale>}:restocks     counts every raise of the stock (kept in the record)
-- KEYS[8]  {s:<sale>}:m:<dtm gid>  with a dtm coordinator: the marker dtm_query.lua wrote when
--                                  dtm's back-check found no reservation (read only then)
-- ARGV[1]  gid (<sale>/<uid>)
-- ARGV[2]  uid
-- ARGV[3]  branch timeout in ms (how long before recovery takes the transaction over)
-- ARGV[4]  pub/sub channel of the sale ({s:<sale>}:events)
-- ARGV[5]  when the barrier and the record expire (unix ms), 0 for never
-- ARGV[6]  the dtm message's gid ('' with the embedded coordinator); kept in the record with
--          `coordinator = dtm`, which the recovery poller leaves to dtm
--
-- Replies:
--   {"RESERVED", left, fence}                one unit taken; transaction `submitted` and due;
--                                            fence is unique in this Redis's history, so an
--                                            origin that is handed a fence it saw before knows
--                                            Redis forgot writes
--   {"DUPLICATE", state, outcome, order_id}  the barrier exists: the earlier transaction's state
--   {"SOLD_OUT"}                             no unit left; nothing written
--   {"HEALING"}                              the sale is being rebuilt from PostgreSQL; nothing written
--   {"UNKNOWN"}                              no stock key: the sale is not open in this Redis
--   {"REFUSED"}                              dtm's back-check failed this message already
--                                            (KEYS[8] exists); nothing written

if redis.call('EXISTS', KEYS[2]) == 1 then
  local tx = redis.call('HMGET', KEYS[3], 'state', 'outcome', 'order')
  return {'DUPLICATE', tx[1] or '', tx[2] or '', tx[3] or ''}
end

local dtm = ARGV[6]
if dtm ~= '' and redis.call('EXISTS', KEYS[8]) == 1 then
  return {'REFUSED'}
end
if redis.call('EXISTS', KEYS[5]) == 1 then
  return {'HEALING'}
end
local stock = redis.call('GET', KEYS[1])
if not stock then
  return {'UNKNOWN'}
end
if tonumber(stock) <= 0 then
  return {'SOLD_OUT'}
end

local left = redis.call('DECR', KEYS[1])
local fence = redis.call('INCR', KEYS[6])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[2], 'reserved')
redis.call('HSET', KEYS[3], 'state', 'submitted', 'uid', ARGV[2], 'created_ms', now_ms,
  'attempts', 0, 'restocks', redis.call('GET', KEYS[7]) or '0')
if dtm ~= '' then
  redis.call('HSET', KEYS[3], 'coordinator', 'dtm', 'dtm_gid', dtm)
end
local expire_at = tonumber(ARGV[5])
if expire_at > 0 then
  redis.call('PEXPIREAT', KEYS[2], expire_at)
  redis.call('PEXPIREAT', KEYS[3], expire_at)
end
redis.call('ZADD', KEYS[4], now_ms + tonumber(ARGV[3]), ARGV[1])
if left == 0 then
  redis.call('PUBLISH', ARGV[4], 'sold_out')
end
return {'RESERVED', left, fence}
