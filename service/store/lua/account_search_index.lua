-- Add existing accounts to their partition's search index (the one-shot backfill); an id
-- whose account hash is gone is skipped, so a delete racing the backfill leaves no entry.
-- KEYS[1] partition search index (sorted set, score 0: see service/account_search.py)
-- KEYS[2..] the account hashes, in the order of ARGV
-- ARGV[1..] the account ids (all of KEYS[1]'s partition)
-- returns the number of accounts indexed
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
local done = 0
for i, id in ipairs(ARGV) do
  local app = redis.call('HGET', KEYS[i + 1], 'app')
  if app then
    local user = redis.call('HGET', KEYS[i + 1], 'user') or ''
    search_add(KEYS[1], user, id)
    done = done + 1
  end
end
return done
