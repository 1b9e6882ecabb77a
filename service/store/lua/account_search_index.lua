-- Add existing accounts to their partition's search index (the one-shot backfill); an id
-- whose account hash is gone is skipped, so a delete racing the backfill leaves no entry.
-- KEYS[1] partition search index (sorted set of lower(user)\0id and lower(id)\0id, score 0)
-- KEYS[2..] the account hashes, in the order of ARGV
-- ARGV[1..] the account ids (all of KEYS[1]'s partition)
-- returns the number of accounts indexed
local done = 0
for i, id in ipairs(ARGV) do
  local app = redis.call('HGET', KEYS[i + 1], 'app')
  if app then
    local user = redis.call('HGET', KEYS[i + 1], 'user') or ''
    redis.call('ZADD', KEYS[1], 0, string.lower(user) .. '\0' .. id, 0, string.lower(id) .. '\0' .. id)
    done = done + 1
  end
end
return done
