-- Append audit entries (each a batch of records) to one partition's stream, then trim it.
-- KEYS[1] the partition's audit stream
-- ARGV[1] oldest time kept, epoch ms (XTRIM MINID: older records go)
-- ARGV[2] length cap of the stream (XADD MAXLEN ~: a safety net)
-- ARGV[3..] pairs: the entry's time (epoch ms, its id's first part), the records (a JSON array)
-- returns the number of entries appended
-- An entry id is `<time>-<seq>`; a time behind the stream's last entry (another process's
-- clock, a retried batch) takes the server's next id instead, so that no record is refused.
local key, cap = KEYS[1], ARGV[2]
local appended = 0
for i = 3, #ARGV, 2 do
  local added = redis.pcall('XADD', key, 'MAXLEN', '~', cap, ARGV[i] .. '-*', 'r', ARGV[i + 1])
  if type(added) == 'table' and added.err then
    redis.call('XADD', key, 'MAXLEN', '~', cap, '*', 'r', ARGV[i + 1])
  end
  appended = appended + 1
end
redis.call('XTRIM', key, 'MINID', ARGV[1])
return appended
