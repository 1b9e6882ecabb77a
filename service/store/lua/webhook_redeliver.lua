-- Turn a dead letter back into a pending delivery, due now, with a fresh retry budget.
-- KEYS[1] event's delivery record (hash)
-- KEYS[2] outbox retry set
-- KEYS[3] outbox dead-letter set
-- ARGV[1] event id (msg_...)
-- ARGV[2] now, epoch ms
-- returns 1 when the dead letter was queued again, 0 when there was none
if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', 'pending', 'first', ARGV[2])
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), ARGV[1])
return 1
