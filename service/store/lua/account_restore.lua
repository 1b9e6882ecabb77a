-- Restore an exported account exactly (import): replace its hash, index it by status,
-- schedule it when active, keep the app counts right, and invalidate caches. No event:
-- restoring a backup is not a change a webhook receiver should hear about. A restore that
-- replaces a stored record gives the grant a generation above both the stored and the
-- exported one, so that a refresh in flight for the replaced grant writes nothing.
-- KEYS[1] account hash
-- KEYS[2] partition schedule (sorted set, score = refresh due, epoch ms)
-- KEYS[3] partition index of all accounts
-- KEYS[4] partition index of reauth_required accounts (active = all minus it)
-- KEYS[5] partition app counts (hash app id -> accounts)
-- KEYS[6] partition search index (sorted set, score 0: see service/account_search.py)
-- KEYS[7] partition grant deadlines (sorted set, score = grantDeadline, epoch ms)
-- KEYS[8] partition scope lists (hash reference -> granted-scope JSON list)
-- ARGV[1] account id
-- ARGV[2] app id
-- ARGV[3] status: 'active' (scheduled) or 'reauth_required' (not scheduled)
-- ARGV[4] refresh due time, epoch ms (used when active)
-- ARGV[5] invalidation channel
-- ARGV[6] cache name to publish on the channel (CacheNames.account)
-- ARGV[7..] field, value pairs: the whole record
-- returns 'new' or 'existing'
-- include: search_lib (search_entries, search_add, search_rem)
-- include: scopes_lib (scoped_pairs)
local id, app = ARGV[1], ARGV[2]
local old_gen = tonumber(redis.call('HGET', KEYS[1], 'grantGen') or '0') or 0
local old_app = redis.call('HGET', KEYS[1], 'app')
local old_user = redis.call('HGET', KEYS[1], 'user')
if old_user then search_rem(KEYS[6], old_user, id) end
if old_app and old_app ~= app then
  if redis.call('HINCRBY', KEYS[5], old_app, -1) <= 0 then redis.call('HDEL', KEYS[5], old_app) end
end
if not old_app or old_app ~= app then redis.call('HINCRBY', KEYS[5], app, 1) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(scoped_pairs(KEYS[8], 7)))
local new_gen = tonumber(redis.call('HGET', KEYS[1], 'grantGen') or '0') or 0
if old_app then redis.call('HSET', KEYS[1], 'grantGen', math.max(old_gen, new_gen) + 1) end
redis.call('ZADD', KEYS[3], 0, id)
local user = redis.call('HGET', KEYS[1], 'user') or ''
search_add(KEYS[6], user, id)
local deadline = redis.call('HGET', KEYS[1], 'grantDeadline')
if deadline then redis.call('ZADD', KEYS[7], tonumber(deadline), id) else redis.call('ZREM', KEYS[7], id) end
if ARGV[3] == 'reauth_required' then
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[4], 0, id)
else
  redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), id)
  redis.call('ZREM', KEYS[4], id)
end
redis.call('PUBLISH', ARGV[5], ARGV[6])
if old_app then return 'existing' end
return 'new'
