-- Claim up to N due accounts of one partition: each is re-scored to now + lease, so that a
-- worker that dies loses nothing (its claims come due again when the lease passes).
-- KEYS[1] partition schedule (sorted set, score = refresh due, epoch ms)
-- ARGV[1] now, epoch ms
-- ARGV[2] lease, ms
-- ARGV[3] most accounts to claim
-- returns a flat list: account id, its due time (epoch ms), account id, due time, ...
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0,
  tonumber(ARGV[3]), 'WITHSCORES')
local leased = tonumber(ARGV[1]) + tonumber(ARGV[2])
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], 'XX', leased, due[i])
end
return due
