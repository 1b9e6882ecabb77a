-- Delete an account and every key of it: record, lock, per-resource tokens, schedule,
-- indexes, app count; event.
-- KEYS[1] account hash
-- KEYS[2] account lock
-- KEYS[3] partition schedule
-- KEYS[4] partition event stream
-- KEYS[5] partition index of all accounts
-- KEYS[6] partition index of reauth_required accounts
-- KEYS[7] partition app counts (hash app id -> accounts)
-- KEYS[8] partition search index (sorted set, score 0: see service/account_search.py)
-- KEYS[9] partition grant deadlines (sorted set)
-- KEYS[10] account's per-resource tokens
-- ARGV[1] account id
-- ARGV[2] invalidation channel
-- ARGV[3] event JSON to append ('' = none)
-- ARGV[4] cache name to publish on the channel (CacheNames.account)
-- returns 1 when deleted, 0 when there was no such account
-- include: search_lib (search_entries, search_add, search_rem)
local app = redis.call('HGET', KEYS[1], 'app')
if not app then return 0 end
local user = redis.call('HGET', KEYS[1], 'user') or ''
search_rem(KEYS[8], user, ARGV[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[10])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('ZREM', KEYS[9], ARGV[1])
if redis.call('HINCRBY', KEYS[7], app, -1) <= 0 then redis.call('HDEL', KEYS[7], app) end
if ARGV[3] ~= '' then redis.call('XADD', KEYS[4], '*', 'payload', ARGV[3]) end
redis.call('PUBLISH', ARGV[2], ARGV[4])
return 1
