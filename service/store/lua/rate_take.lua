-- Take one token from an app's refresh-rate bucket, shared by every worker.
-- KEYS[1] the app's bucket (hash: tokens, at)
-- ARGV[1] now, epoch ms
-- ARGV[2] refill rate, tokens per second
-- ARGV[3] bucket size (burst), tokens
-- returns 0 when a token was taken, else ms to wait before trying again
local now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait
