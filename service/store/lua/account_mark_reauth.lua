-- Mark an account as needing re-consent: status, unschedule, re-index, event, release lock.
-- Fenced: writes only while the account holds the grant generation and the refresh token
-- (its stored ciphertext) that the failed call used; otherwise the failure is stale.
-- KEYS[1] account hash
-- KEYS[2] account lock
-- KEYS[3] partition schedule
-- KEYS[4] partition event stream
-- KEYS[5] partition index of reauth_required accounts (active = all minus it)
-- ARGV[1] lock value held by the caller ('' = none)
-- ARGV[2] account id
-- ARGV[3] invalidation channel
-- ARGV[4] event JSON to append on the transition ('' = none)
-- ARGV[5] grant generation the caller read (a missing field counts as '0')
-- ARGV[6] stored refresh token ciphertext the caller read ('' = do not compare)
-- ARGV[7] cache name to publish on the channel (CacheNames.account)
-- ARGV[8..] field, value pairs to set (status, reason, lastError, updatedAt)
-- returns 1 when the account changed to reauth_required, 0 when it already was,
--         -1 when gone, -2 when the grant or its refresh token changed meanwhile (stale)
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if (redis.call('HGET', KEYS[1], 'grantGen') or '0') ~= ARGV[5] then return -2 end
if ARGV[6] ~= '' and redis.call('HGET', KEYS[1], 'refreshToken') ~= ARGV[6] then return -2 end
local was = redis.call('HGET', KEYS[1], 'status')
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[5], 0, ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[7])
if was == 'reauth_required' then return 0 end
if ARGV[4] ~= '' then redis.call('XADD', KEYS[4], '*', 'payload', ARGV[4]) end
return 1
