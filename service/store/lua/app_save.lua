-- Create or update an OAuth2 app and tell every web process to forget its cached copy.
-- KEYS[1] set of app ids
-- KEYS[2] app hash
-- ARGV[1] app id
-- ARGV[2] invalidation channel
-- ARGV[3] mode: 'create' (fails when it exists) or 'update' (fails when it does not)
-- ARGV[4] comma-separated fields to delete first ('' = none)
-- ARGV[5] cache name to publish on the channel (CacheNames.app)
-- ARGV[6..] field, value pairs to set on the app hash
-- returns 1 when saved, 0 when the mode's condition failed
local exists = redis.call('EXISTS', KEYS[2]) == 1
if (ARGV[3] == 'create' and exists) or (ARGV[3] == 'update' and not exists) then return 0 end
if ARGV[4] ~= '' then
  for field in string.gmatch(ARGV[4], '[^,]+') do redis.call('HDEL', KEYS[2], field) end
end
redis.call('HSET', KEYS[2], unpack(ARGV, 6))
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[5])
return 1
