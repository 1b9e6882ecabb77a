-- Record a failed refresh that may be retried: attempt count, last error; release the lock.
-- KEYS[1] account hash
-- KEYS[2] account lock
-- ARGV[1] lock value held by the caller ('' = none)
-- ARGV[2] last error JSON
-- returns the new attempt count, or -1 when the account is gone
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'lastError', ARGV[2])
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
