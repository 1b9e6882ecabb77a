-- Store the result of a successful refresh, reschedule, release the lock, invalidate caches,
-- and record a scopesMissing event when the granted scopes newly lack required ones.
-- Fenced: writes only while the account still holds the grant generation the caller read.
-- KEYS[1] account hash
-- KEYS[2] account lock
-- KEYS[3] partition schedule (sorted set, score = refresh due, epoch ms)
-- KEYS[4] partition event stream
-- KEYS[5] partition grant deadlines (sorted set, score = grantDeadline, epoch ms)
-- KEYS[6] partition scope lists (hash reference -> granted-scope JSON list)
-- ARGV[1] lock value held by the caller ('' = caller holds no lock)
-- ARGV[2] next refresh due time, epoch ms
-- ARGV[3] invalidation channel
-- ARGV[4] account id
-- ARGV[5] JSON list of required scopes missing from the grant ('[]' = none)
-- ARGV[6] scopesMissing event JSON, appended when ARGV[5] differs from the stored list
--         ('' = webhooks want no such event)
-- ARGV[7] grant generation the caller read (a missing field counts as '0')
-- ARGV[8] cache name to publish on the channel (CacheNames.account)
-- ARGV[9..] field, value pairs to set on the account hash
-- returns 'ok'; 'gone' when the account was deleted meanwhile (nothing written);
--         'superseded' when its grant was replaced meanwhile (nothing written);
--         'late' when the lock had passed to nobody or another holder (tokens still written,
--         because a rotated refresh token of the current grant must never be lost)
-- include: scopes_lib (scoped_pairs)
local function release()
  if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
    redis.call('DEL', KEYS[2])
    return true
  end
  return ARGV[1] == ''
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  release()
  return 'gone'
end
if (redis.call('HGET', KEYS[1], 'grantGen') or '0') ~= ARGV[7] then
  release()
  return 'superseded'
end
local result = 'ok'
if not release() then result = 'late' end
local was_missing = redis.call('HGET', KEYS[1], 'missingScopes') or '[]'
if ARGV[5] ~= was_missing and ARGV[5] ~= '[]' and ARGV[6] ~= '' then
  redis.call('XADD', KEYS[4], '*', 'payload', ARGV[6])
end
redis.call('HSET', KEYS[1], 'missingScopes', ARGV[5], 'attempts', '0')
redis.call('HDEL', KEYS[1], 'lastError', 'reason', 'answerLostAt')
redis.call('HSET', KEYS[1], unpack(scoped_pairs(KEYS[6], 9)))
local deadline = redis.call('HGET', KEYS[1], 'grantDeadline')
if deadline then redis.call('ZADD', KEYS[5], tonumber(deadline), ARGV[4]) end
redis.call('ZADD', KEYS[3], tonumber(ARGV[2]), ARGV[4])
redis.call('PUBLISH', ARGV[3], ARGV[8])
return result
