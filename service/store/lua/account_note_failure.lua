-- Record a failed refresh that will be retried: attempt count, last error, retry time;
-- release the lock. Fenced like account_mark_reauth: a stale failure writes nothing.
-- KEYS[1] account hash
-- KEYS[2] account lock
-- KEYS[3] partition schedule (sorted set, score = refresh due, epoch ms)
-- ARGV[1] lock value held by the caller ('' = none)
-- ARGV[2] last error JSON
-- ARGV[3] account id
-- ARGV[4] retry due time, epoch ms (only an account still in the schedule is moved)
-- ARGV[5] grant generation the caller read (a missing field counts as '0')
-- ARGV[6] stored refresh token ciphertext the caller read ('' = do not compare)
-- ARGV[7] epoch ms when a sent request's answer was lost ('' = it was not)
-- returns the new attempt count; -1 when the account is gone; -2 when stale
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if (redis.call('HGET', KEYS[1], 'grantGen') or '0') ~= ARGV[5] then return -2 end
if ARGV[6] ~= '' and redis.call('HGET', KEYS[1], 'refreshToken') ~= ARGV[6] then return -2 end
redis.call('HSET', KEYS[1], 'lastError', ARGV[2])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'answerLostAt', ARGV[7]) end
redis.call('ZADD', KEYS[3], 'XX', tonumber(ARGV[4]), ARGV[3])
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
