-- Create or replace an account's grant (import, consent, re-consent): record, new grant
-- generation (its per-resource tokens dropped), schedule, indexes, event, invalidation. An account never moves to another app.
-- KEYS[1] account hash
-- KEYS[2] partition schedule (sorted set, score = refresh due, epoch ms)
-- KEYS[3] partition event stream
-- KEYS[4] partition index of all accounts (sorted set)
-- KEYS[5] partition index of reauth_required accounts (active = all minus it)
-- KEYS[6] partition app counts (hash app id -> accounts)
-- KEYS[7] partition search index (sorted set, score 0: see service/account_search.py)
-- KEYS[8] partition grant deadlines (sorted set, score = grantDeadline, epoch ms)
-- KEYS[9] account's per-resource tokens (deleted: they belong to the replaced grant)
-- KEYS[10] partition scope lists (hash reference -> granted-scope JSON list)
-- ARGV[1] account id
-- ARGV[2] app id
-- ARGV[3] refresh due time, epoch ms
-- ARGV[4] invalidation channel
-- ARGV[5] event JSON to append when the account is new ('' = none)
-- ARGV[6] event JSON to append when it leaves reauth_required ('' = none)
-- ARGV[7] cache name to publish on the channel (CacheNames.account)
-- ARGV[8..] field, value pairs to set on the account hash (updatedAt among them)
-- returns {'new' | 'existing', grant generation now stored}, or
--         {'app_mismatch', app id the account is on} (nothing written)
-- include: search_lib (search_entries, search_add, search_rem)
-- include: scopes_lib (scoped_pairs)
local id = ARGV[1]
local app = ARGV[2]
local old_app = redis.call('HGET', KEYS[1], 'app')
if old_app and old_app ~= app then return {'app_mismatch', old_app} end
local existed = old_app ~= false
local old_status = redis.call('HGET', KEYS[1], 'status')
local old_user = redis.call('HGET', KEYS[1], 'user')
if old_user then search_rem(KEYS[7], old_user, id) end
if not existed then redis.call('HINCRBY', KEYS[6], app, 1) end
redis.call('HDEL', KEYS[1], 'reason', 'lastError', 'accessToken', 'expiresAt', 'lifetimeMs',
  'previousRefreshToken', 'answerLostAt', 'missingScopes', 'tid', 'oid', 'sub', 'iss',
  'expectedUser', 'grantDeadline', 'grantDeadlineFrom', 'grantNotice')
redis.call('HSET', KEYS[1], 'status', 'active', 'attempts', '0', unpack(scoped_pairs(KEYS[10], 8)))
redis.call('DEL', KEYS[9])
local gen = redis.call('HINCRBY', KEYS[1], 'grantGen', 1)
if not existed then redis.call('HSET', KEYS[1], 'createdAt', redis.call('HGET', KEYS[1], 'updatedAt')) end
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), id)
redis.call('ZADD', KEYS[4], 0, id)
redis.call('ZREM', KEYS[5], id)
local deadline = redis.call('HGET', KEYS[1], 'grantDeadline')
if deadline then redis.call('ZADD', KEYS[8], tonumber(deadline), id) else redis.call('ZREM', KEYS[8], id) end
local user = redis.call('HGET', KEYS[1], 'user') or ''
search_add(KEYS[7], user, id)
if not existed and ARGV[5] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'payload', ARGV[5])
elseif existed and old_status == 'reauth_required' and ARGV[6] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'payload', ARGV[6])
end
redis.call('PUBLISH', ARGV[4], ARGV[7])
if existed then return {'existing', gen} end
return {'new', gen}
