-- Record when an API token was last used, unless it has been revoked meanwhile.
-- KEYS[1] the API token's hash
-- ARGV[1] last use, epoch ms
-- returns 1 when recorded, 0 when the token no longer exists
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local seen = tonumber(redis.call('HGET', KEYS[1], 'lastUsed') or '0')
if tonumber(ARGV[1]) > seen then redis.call('HSET', KEYS[1], 'lastUsed', ARGV[1]) end
return 1
