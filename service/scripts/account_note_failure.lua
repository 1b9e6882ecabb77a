-- Record a failed refresh that will be retried: attempt count, last error, retry time;
-- release the lock.
-- KEYS[1] account hash
-- KEYS[2] account lock
-- KEYS[3] partition schedule (sorted set, score = refresh due, epoch ms)
-- ARGV[1] lock value held by the caller ('' = none)
-- ARGV[2] last error JSON
-- ARGV[3] account id
-- ARGV[4] retry due time, epoch ms (only an account still in the schedule is moved)
-- returns the new attempt count, or -1 when the account is gone
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'lastError', ARGV[2])
redis.call('ZADD', KEYS[3], 'XX', tonumber(ARGV[4]), ARGV[3])
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
