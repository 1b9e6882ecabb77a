-- Extend a lock to a full life again, only when the caller still holds it.
-- KEYS[1] lock key
-- ARGV[1] lock value the caller set
-- ARGV[2] new life, ms
-- returns 1 when extended, 0 when the lock was not the caller's
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 0
