-- dtm_query.lua: the answer to dtm's back-check of a prepared message (dtm's RedisQueryPrepared,
-- on this origin's keys), atomic with any reserve.lua of the same sale. The message's reservation
-- exists (the record holds its dtm gid): dtm may submit. Else the marker is written, so that a
-- reserve.lua of this message that arrives later refuses (its reply REFUSED), and dtm fails the
-- message.
--
-- KEYS[1]  {s:<sale>}:tx:<gid>     the record reserve.lua writes (gid: <sale>/<uid>)
-- KEYS[2]  {s:<sale>}:m:<dtm gid>  the marker reserve.lua checks
-- ARGV[1]  the dtm message's gid
-- ARGV[2]  when the marker expires (unix ms), 0 for never
--
-- Replies: "PREPARED" (the reservation of this message exists) or "FAILURE" (it does not, and
-- never will: the marker exists)

if redis.call('HGET', KEYS[1], 'dtm_gid') == ARGV[1] then
  return 'PREPARED'
end
if redis.call('SET', KEYS[2], 'rollback', 'NX') then
  local expire_at = tonumber(ARGV[2])
  if expire_at > 0 then
    redis.call('PEXPIREAT', KEYS[2], expire_at)
  end
end
return 'FAILURE'
