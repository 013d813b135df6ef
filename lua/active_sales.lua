-- active_sales.lua: the recovery poller's one read of the index of active sales
-- (origin/src/activity.rs): drops the sales not marked within the horizon, returns the others.
-- The index also holds its epoch: a member `epoch:<TIME in us>` scored +inf (never dropped), put
-- there by the first read that finds none. An index that was lost (its node replaced by an empty
-- one, restarted without its data, the key deleted) comes back with another epoch, which tells
-- every poller to go over every sale once (a full pass): the marks it lost are not needed then.
--
-- KEYS[1]  {recovery}:active
-- ARGV[1]  horizon in ms: sales whose last mark is older are dropped
--
-- Reply: {epoch, sale1, sale2, ...}: the epoch, then the sales marked within the horizon, oldest
-- mark first.

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now_ms - tonumber(ARGV[1])))
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local last = members[#members]
local epoch
if last and string.sub(last, 1, 6) == 'epoch:' then
  epoch = string.sub(last, 7)
  members[#members] = nil
else
  epoch = string.format('%s%06d', t[1], tonumber(t[2]))
  redis.call('ZADD', KEYS[1], 'inf', 'epoch:' .. epoch)
end
table.insert(members, 1, epoch)
return members
