-- claim.lua: the recovery poller's claim on due transactions (DTM's LockOneGlobalTrans). Takes up
-- to ARGV[3] gids whose time has come and pushes each one's score by a lease that doubles with
-- every attempt, so that two origins never work on one transaction at once and a failing branch
-- backs off. Besides KEYS, it touches the claimed transactions' records, named ARGV[4] .. gid,
-- all in the sale's hash slot.
--
-- KEYS[1]  {s:<sale>}:due
-- ARGV[1]  first lease in ms
-- ARGV[2]  largest lease in ms
-- ARGV[3]  most gids to claim
-- ARGV[4]  prefix of the transaction records ({s:<sale>}:tx:)
--
-- Reply: {in_flight, next_due_ms, gid1, attempt1, gid2, attempt2, ...}: the size of the due set
-- (transactions not completed), the ms until its earliest transaction is due once the claimed ones
-- are leased (-1 when the set is empty; 0 or less when more are due than one claim takes), then the
-- claimed gids, each with its attempt number (1 for the first claim). A transaction whose record
-- says `coordinator = dtm` is dtm's to recover (its back-check and branch retries): it is never
-- claimed, only pushed by the largest lease, so it stays counted in flight without being read
-- again every poll. The poller sleeps until that
-- earliest one instead of a whole poll interval, so an orphan is taken over when it falls due.

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local first = tonumber(ARGV[1])
local largest = tonumber(ARGV[2])
local gids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[3]))
local out = {redis.call('ZCARD', KEYS[1]), -1}
for _, gid in ipairs(gids) do
  if redis.call('HGET', ARGV[4] .. gid, 'coordinator') == 'dtm' then
    redis.call('ZADD', KEYS[1], now_ms + largest, gid)
  else
    local attempt = redis.call('HINCRBY', ARGV[4] .. gid, 'attempts', 1)
    local lease = math.min(first * (2 ^ (attempt - 1)), largest)
    redis.call('ZADD', KEYS[1], now_ms + lease, gid)
    out[#out + 1] = gid
    out[#out + 1] = attempt
  end
end
local earliest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if earliest[2] then
  out[2] = math.floor(tonumber(earliest[2])) - now_ms
end
return out
