-- Reserve one login attempt under the per-IP and per-account limits, before the password is
-- checked: concurrent attempts can never check more passwords than the limits allow.
-- KEYS[1] failed-login counter of the client IP (TTL = the window)
-- KEYS[2] failed-login counter of the account name (TTL = the window)
-- ARGV[1] attempts allowed per IP and window
-- ARGV[2] attempts allowed per account and window
-- ARGV[3] the window, s
-- returns 0 when reserved (both counters + 1), else seconds until a full counter expires
local ip = tonumber(redis.call('GET', KEYS[1]) or '0')
local account = tonumber(redis.call('GET', KEYS[2]) or '0')
local wait = 0
if ip >= tonumber(ARGV[1]) then wait = math.max(wait, redis.call('TTL', KEYS[1])) end
if account >= tonumber(ARGV[2]) then wait = math.max(wait, redis.call('TTL', KEYS[2])) end
if ip >= tonumber(ARGV[1]) or account >= tonumber(ARGV[2]) then
  return math.max(wait, 1)
end
for _, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[3], 'NX')
end
return 0
