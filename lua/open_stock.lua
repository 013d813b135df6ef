-- open_stock.lua: puts a new sale's stock into Redis, once. A second call (a retried creation)
-- changes nothing.
--
-- KEYS[1]  {s:<sale>}:stock
-- ARGV[1]  stock (integer >= 0)
--
-- Reply: 1 when the stock was set now, 0 when it was already there.

if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  return 1
end
return 0
