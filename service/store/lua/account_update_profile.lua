-- Change an existing account's profile fields (name, email): nothing else, no new grant.
-- KEYS[1] account hash
-- ARGV[1] invalidation channel
-- ARGV[2] cache name to publish on the channel (CacheNames.account)
-- ARGV[3..] field, value pairs to set (name, email, updatedAt)
-- returns 1 when changed, 0 when there is no such account (nothing written)
if not redis.call('HGET', KEYS[1], 'app') then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
