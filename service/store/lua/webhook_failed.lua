-- Record a failed delivery attempt: move the event out of the stream's pending list into a
-- record of its own, then schedule the next attempt or, past the budget, a dead letter.
-- KEYS[1] outbox event stream
-- KEYS[2] event's delivery record (hash)
-- KEYS[3] outbox retry set (score = next attempt, epoch ms)
-- KEYS[4] outbox dead-letter set (score = when it died, epoch ms)
-- ARGV[1] consumer group
-- ARGV[2] stream entry id ('' when the attempt came from the retry set)
-- ARGV[3] event id (msg_...)
-- ARGV[4] event payload JSON
-- ARGV[5] every attempt so far, JSON list
-- ARGV[6] next attempt, epoch ms ('' = no more attempts: dead letter)
-- ARGV[7] now, epoch ms
-- returns 'retry' or 'dead'
if ARGV[2] ~= '' then redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('HSETNX', KEYS[2], 'payload', ARGV[4])
redis.call('HSETNX', KEYS[2], 'first', ARGV[7])
redis.call('HSET', KEYS[2], 'attempts', ARGV[5])
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[2], 'status', 'pending')
  redis.call('ZADD', KEYS[3], tonumber(ARGV[6]), ARGV[3])
  return 'retry'
end
redis.call('HSET', KEYS[2], 'status', 'failed')
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], tonumber(ARGV[7]), ARGV[3])
return 'dead'
