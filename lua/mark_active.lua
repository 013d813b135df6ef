-- mark_active.lua: marks a sale active in the recovery poller's index, before an origin sends it a
-- reservation or gives one of its units back (origin/src/activity.rs). The index is one sorted
-- set under its own hash tag, so no sale's script can write it: the origin marks first, then sends
-- the sale's own script. The score is Redis's TIME, never an origin's clock; GT keeps the latest
-- mark when two origins mark at once (and leaves the index's epoch, scored +inf, alone).
--
-- KEYS[1]  {recovery}:active
-- ARGV[1]  sale id
--
-- Reply: 1 when the sale was not in the index, 0 when its mark moved on.

local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], 'GT', now_ms, ARGV[1])
