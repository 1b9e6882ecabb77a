-- Replace hash fields only where they still hold the exact value the caller read
-- (compare-and-set per field): key rotation never overwrites a value written meanwhile.
-- KEYS[1] hash (an account, an app, or the settings)
-- ARGV[1..] triples: field, value the caller read, value to set instead
-- returns the number of fields replaced (a field that changed or vanished is left alone)
local replaced = 0
for i = 1, #ARGV, 3 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    replaced = replaced + 1
  end
end
return replaced
