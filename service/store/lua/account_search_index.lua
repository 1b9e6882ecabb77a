-- Add existing accounts to their partition's search index (the one-shot backfill); an id
-- whose account hash is gone is skipped, so a delete racing the backfill leaves no entry.
-- KEYS[1] partition search index (sorted set, score 0: see service/account_search.py)
-- KEYS[2..] the account hashes, in the order of ARGV
-- ARGV[1..] the account ids (all of KEYS[1]'s partition)
-- returns the number of accounts indexed
-- include: search_lib (search_entries, search_add, search_rem)
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
