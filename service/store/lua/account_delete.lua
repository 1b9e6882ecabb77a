-- Delete an account and every key of it: record, lock, schedule, indexes, app count; event.
-- KEYS[1] account hash
-- KEYS[2] account lock
-- KEYS[3] partition schedule
-- KEYS[4] partition event stream
-- KEYS[5] partition index of all accounts
-- KEYS[6] partition index of active accounts
-- KEYS[7] partition index of reauth_required accounts
-- KEYS[8] partition app counts (hash app id -> accounts)
-- KEYS[9] partition search index (sorted set, score 0: see service/account_search.py)
-- ARGV[1] account id
-- ARGV[2] invalidation channel
-- ARGV[3] event JSON to append ('' = none)
-- ARGV[4] cache name to publish on the channel (CacheNames.account)
-- returns 1 when deleted, 0 when there was no such account
-- search entries of one text: lower(text) and each lower-cased part after . - _ @ +
local function search_entries(text, id)
  local low = string.lower(text)
  local out = {low .. '\0' .. id}
  for pos in string.gmatch(low, '[%.%-_@+]()') do
    if pos <= #low then out[#out + 1] = string.sub(low, pos) .. '\0' .. id end
  end
  return out
end
local function search_add(key, user, id)
  local args = {}
  for _, list in ipairs({search_entries(user, id), search_entries(id, id)}) do
    for _, member in ipairs(list) do args[#args + 1] = 0; args[#args + 1] = member end
  end
  redis.call('ZADD', key, unpack(args))
end
local function search_rem(key, user, id)
  redis.call('ZREM', key, unpack(search_entries(user, id)))
  redis.call('ZREM', key, unpack(search_entries(id, id)))
end
local app = redis.call('HGET', KEYS[1], 'app')
if not app then return 0 end
local user = redis.call('HGET', KEYS[1], 'user') or ''
search_rem(KEYS[9], user, ARGV[1])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[1])
if redis.call('HINCRBY', KEYS[8], app, -1) <= 0 then redis.call('HDEL', KEYS[8], app) end
if ARGV[3] ~= '' then redis.call('XADD', KEYS[4], '*', 'payload', ARGV[3]) end
redis.call('PUBLISH', ARGV[2], ARGV[4])
return 1
