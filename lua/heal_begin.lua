-- heal_begin.lua: takes a sale's heal lock, once per loss. While the lock is held reserve.lua
-- hands out no unit (HEALING); completions and returns go on. Two origins that noticed the same
-- loss heal it once: the second finds the lock, or finds the loss healed already.
--
-- KEYS[1]  {s:<sale>}:healing    the lock (its value is the healer's token)
-- KEYS[2]  {s:<sale>}:fence      its epoch (fence / 2^32) moves on with every heal
-- KEYS[3]  {s:<sale>}:stock
-- KEYS[4]  {s:<sale>}:restocks
-- ARGV[1]  the healer's token
-- ARGV[2]  the lock's lifetime in ms (each step of the heal renews it)
-- ARGV[3]  what was noticed: "missing" (no stock key), "drift" (the books drift at a quiet
--          moment: checked by the caller, healed unless a heal is under way), or the fence
--          epoch of a repeated fence or of a unit PostgreSQL refused
--
-- Replies:
--   {"STARTED", restocks}   the lock is this healer's; restocks is the restock count now
--   {"BUSY"}                another healer holds the lock
--   {"HEALED"}              the loss was healed since it was noticed: nothing to do

if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'BUSY'}
end
if ARGV[3] == 'missing' then
  if redis.call('EXISTS', KEYS[3]) == 1 then
    return {'HEALED'}
  end
elseif ARGV[3] ~= 'drift' then
  local epoch = math.floor(tonumber(redis.call('GET', KEYS[2]) or '0') / 4294967296)
  if epoch ~= tonumber(ARGV[3]) then
    return {'HEALED'}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return {'STARTED', tonumber(redis.call('GET', KEYS[4]) or '0')}
