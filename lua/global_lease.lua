-- global_lease.lua: leases a slice of a sale's global admission budget to one edge, which spends
-- it locally. The budget is a token bucket on Redis TIME holding one second of it (capacity =
-- per_second), refilled at per_second; a new (or expired) bucket starts full. The bucket expires
-- once it would be full again, so an idle sale leaves nothing behind.
--
-- KEYS[1]  {s:<sale>}:admit   hash: tokens (float), ts (ms of the last refill)
-- ARGV[1]  per_second: the refill rate and the capacity
-- ARGV[2]  wanted: the lease size
--
-- Reply: {granted, next_ms, full_ms}
--   granted   min(wanted, floor(tokens)) admissions, taken from the bucket
--   next_ms   ms until the next whole token is in the bucket (0 if one is there)
--   full_ms   ms until `wanted` tokens are in the bucket (0 if they are): when the edge asks again

local rate = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000

local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if not tokens or not ts then
  tokens = rate
  ts = now
end
if now > ts then
  tokens = math.min(rate, tokens + (now - ts) * rate / 1000)
end

local granted = math.min(wanted, math.floor(tokens))
if granted < 0 then
  granted = 0
end
tokens = tokens - granted

local function ms_until(n)
  if tokens >= n then
    return 0
  end
  return math.ceil((n - tokens) * 1000 / rate)
end

redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', math.max(now, ts))
redis.call('PEXPIRE', KEYS[1], ms_until(rate) + 1)
return {granted, ms_until(1), ms_until(wanted)}
