-- Store a per-resource access token obtained with the account's refresh token (a rotated
-- refresh token with it, onto the account), release the lock. Fenced like a refresh:
-- writes only while the account still holds the grant generation the caller read.
-- KEYS[1] account hash
-- KEYS[2] account lock
-- KEYS[3] account's per-resource tokens (hash slot -> entry JSON)
-- ARGV[1] lock value held by the caller
-- ARGV[2] grant generation the caller read (a missing field counts as '0')
-- ARGV[3] slot (field of KEYS[3])
-- ARGV[4] entry JSON: the sealed token, its expiry (epoch ms), scopes, grant generation
-- ARGV[5] the entry's expiry, epoch ms (KEYS[3] lives at least until then)
-- ARGV[6..] field, value pairs to set on the account hash (a rotated refresh token, the
--         one it replaced, updatedAt)
-- returns 'ok'; 'gone' when the account was deleted meanwhile (nothing written);
--         'superseded' when its grant was replaced meanwhile (nothing written);
--         'late' when the lock had passed on (written all the same: a rotated refresh token
--         of the current grant must never be lost)
local held = redis.call('GET', KEYS[2]) == ARGV[1]
if held then redis.call('DEL', KEYS[2]) end
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if (redis.call('HGET', KEYS[1], 'grantGen') or '0') ~= ARGV[2] then return 'superseded' end
if #ARGV >= 6 then redis.call('HSET', KEYS[1], unpack(ARGV, 6)) end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
local until_ms = tonumber(ARGV[5])
local lives = redis.call('PEXPIRETIME', KEYS[3])
if lives < until_ms then redis.call('PEXPIREAT', KEYS[3], until_ms) end
if held then return 'ok' end
return 'late'
