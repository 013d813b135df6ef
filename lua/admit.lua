-- admit.lua: the per-UID limit (GCRA on Redis TIME) and the spending of the captcha pass token,
-- in ONE round trip. Order: a spent token is a replay and changes nothing; a request over the
-- limit is refused WITHOUT spending its token (the user may retry with it); otherwise the
-- theoretical arrival time (TAT) advances and the token is spent.
-- Dry run: the limit is evaluated as if enforced (a refused request leaves the TAT where it is, as
-- enforcement would), but the request is admitted and its token spent; the reply says it would
-- have been limited.
--
-- KEYS[1]  {s:<sale>}:u:<uid>:rl         TAT in ms (a float), expiring when the user is fully rested
-- KEYS[2]  {s:<sale>}:u:<uid>:jti:<jti>  the spent pass token
-- ARGV[1]  emission interval in ms (1000 / per_second, may be fractional)
-- ARGV[2]  burst tolerance in ms (interval * burst): burst requests pass at once
-- ARGV[3]  seconds the spent token is remembered: until the token's own exp, plus clock skew
-- ARGV[4]  dry run: 1 or 0
--
-- Replies (ms rounded up):
--   {"ADMITTED", remaining, reset_ms}            token spent; remaining requests at once
--   {"LIMITED", retry_after_ms, reset_ms}        over the limit; nothing written
--   {"WOULD_LIMIT", retry_after_ms, reset_ms}    dry run over the limit: token spent, TAT kept
--   {"REPLAYED"}                                 the token was spent already; nothing written

if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'REPLAYED'}
end

local interval = tonumber(ARGV[1])
-- 1 us of slack: ms near 1.7e12 as doubles round at ~0.2 us, which must not refuse the last
-- request of a burst.
local tolerance = tonumber(ARGV[2]) + 0.001
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000

local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + interval

if new_tat - now > tolerance then
  local retry_after = math.ceil(new_tat - now - tolerance)
  local reset = math.ceil(tat - now)
  if ARGV[4] ~= '1' then
    return {'LIMITED', retry_after, reset}
  end
  redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3])
  return {'WOULD_LIMIT', retry_after, reset}
end

local reset = math.ceil(new_tat - now)
redis.call('SET', KEYS[1], new_tat, 'PX', reset)
redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3])
return {'ADMITTED', math.floor((tolerance - (new_tat - now)) / interval), reset}
