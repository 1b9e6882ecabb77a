-- Record that an app's credential reached a notice stage (expiring soon, expired) and append
-- its event, once: a notice already recorded (by this or another worker) changes nothing.
-- KEYS[1] app hash
-- KEYS[2] global event stream (events not tied to one account's partition)
-- ARGV[1] notice field of the credential's slot (credentialNotice, nextCredentialNotice)
-- ARGV[2] the notice value read before ('' = none): the change applies only over it
-- ARGV[3] the new notice value ("<expires epoch ms>:<stage>")
-- ARGV[4] event JSON ('' = webhooks want no such event)
-- ARGV[5] error JSON to flag the app with when it has no flag yet ('' = flag nothing)
-- ARGV[6] invalidation channel
-- ARGV[7] cache name to publish on the channel (CacheNames.app)
-- returns 1 when recorded, 0 when the notice was there already or changed meanwhile,
--   -1 when the app is gone
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local before = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if before ~= ARGV[2] or before == ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[5] ~= '' and redis.call('HEXISTS', KEYS[1], 'error') == 0 then
  redis.call('HSET', KEYS[1], 'error', ARGV[5])
end
if ARGV[4] ~= '' then redis.call('XADD', KEYS[2], '*', 'payload', ARGV[4]) end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
