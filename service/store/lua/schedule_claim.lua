-- Claim up to N due members of one sorted set: each is re-scored to now + lease, so that a
-- worker that dies loses nothing (its claims come due again when the lease passes).
-- With a claim record (KEYS[2], named after a claim id the caller reuses when it retries
-- after a lost reply), the claim is kept there for the lease, and a repeated call gets the
-- same members back instead of claiming others and parking the first ones for a lease.
-- KEYS[1] schedule (sorted set, score = due, epoch ms)
-- KEYS[2] optional: claim record of this claim id (list: member, due, member, due, ...)
-- ARGV[1] now, epoch ms
-- ARGV[2] lease, ms
-- ARGV[3] most members to claim
-- returns a flat list: member, its due time (epoch ms), member, due time, ...
if KEYS[2] then
  local recorded = redis.call('LRANGE', KEYS[2], 0, -1)
  if #recorded > 0 then return recorded end
end
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0,
  tonumber(ARGV[3]), 'WITHSCORES')
local leased = tonumber(ARGV[1]) + tonumber(ARGV[2])
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], 'XX', leased, due[i])
end
if KEYS[2] and #due > 0 then
  for i = 1, #due, 512 do
    redis.call('RPUSH', KEYS[2], unpack(due, i, math.min(i + 511, #due)))
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return due
