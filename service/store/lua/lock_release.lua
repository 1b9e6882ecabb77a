-- Release a lock only when the caller still holds it (compare and delete).
-- KEYS[1] lock key
-- ARGV[1] lock value the caller set
-- returns 1 when released, 0 when the lock was not the caller's
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
