-- Flag an app's credentials as rejected (or clear the flag); record appCredentialsError
-- once per transition into the flagged state.
-- KEYS[1] app hash
-- KEYS[2] global event stream (events not tied to one account's partition)
-- ARGV[1] invalidation channel
-- ARGV[2] app id
-- ARGV[3] error JSON ('' = clear the flag)
-- ARGV[4] appCredentialsError event JSON ('' = webhooks want no such event)
-- ARGV[5] cache name to publish on the channel (CacheNames.app)
-- returns 1 when the flag changed, 0 when it did not, -1 when the app is gone
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local had = redis.call('HEXISTS', KEYS[1], 'error') == 1
if ARGV[3] == '' then
  if not had then return 0 end
  redis.call('HDEL', KEYS[1], 'error')
else
  redis.call('HSET', KEYS[1], 'error', ARGV[3])
  if had then return 0 end
  if ARGV[4] ~= '' then redis.call('XADD', KEYS[2], '*', 'payload', ARGV[4]) end
end
redis.call('PUBLISH', ARGV[1], ARGV[5])
return 1
