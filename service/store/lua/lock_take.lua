-- Take a lock unless another holder has it; taking it again with the same value keeps it
-- (a retried call whose first reply was lost finds its own lock, not a stranger's).
-- KEYS[1] lock key
-- ARGV[1] lock value the caller sets
-- ARGV[2] life, ms
-- returns 1 when the caller holds the lock now, 0 when another holder has it
local current = redis.call('GET', KEYS[1])
if current == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
if current == ARGV[1] then return 1 end
return 0
