-- heal_keys.lua: one step of a heal: writes back, from PostgreSQL's orders, the barriers and
-- transaction records Redis lost, so that earlier buyers are answered `duplicate` with their
-- order again, and the return barriers of units PostgreSQL has taken back, so that no unit is
-- returned twice. Writes only what is missing: a transaction still in flight keeps its record.
-- Renews the heal lock. Besides KEYS it writes the sale's keys named from ARGV[2], all in the
-- sale's hash slot.
--
-- KEYS[1]  {s:<sale>}:healing
-- ARGV[1]  the healer's token
-- ARGV[2]  the sale's key prefix ({s:<sale>}:)
-- ARGV[3]  the lock's lifetime in ms
-- ARGV[4]  when the keys expire (unix ms), 0 for never
-- ARGV[5]  n, the number of orders that follow
-- ARGV[6 .. 5+3n]   gid, status ("pending" or "rejected"), order id, for each order
-- ARGV[6+3n ..]     order ids of the sale's returned units
--
-- Replies:
--   {"WRITTEN", barriers, returns}   keys written now (the rest were there)
--   {"LOST"}                         the lock is not this healer's any more: nothing written

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {'LOST'}
end
local prefix = ARGV[2]
local expire_at = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local barriers = 0
local returns = 0
for i = 0, n - 1 do
  local gid = ARGV[6 + 3 * i]
  local barrier = prefix .. 'b:' .. gid
  local tx = prefix .. 'tx:' .. gid
  if redis.call('SET', barrier, 'reserved', 'NX') then
    barriers = barriers + 1
  end
  if redis.call('EXISTS', tx) == 0 then
    redis.call('HSET', tx, 'state', 'succeeded', 'outcome', ARGV[7 + 3 * i],
      'order', ARGV[8 + 3 * i], 'attempts', 0)
  end
  if expire_at > 0 then
    redis.call('PEXPIREAT', barrier, expire_at)
    redis.call('PEXPIREAT', tx, expire_at)
  end
end
for i = 6 + 3 * n, #ARGV do
  local returned = prefix .. 'r:' .. ARGV[i]
  if redis.call('SET', returned, 'returned', 'NX') then
    returns = returns + 1
  end
  if expire_at > 0 then
    redis.call('PEXPIREAT', returned, expire_at)
  end
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return {'WRITTEN', barriers, returns}
