-- Record a successful delivery: acknowledge the stream entry or drop the retry record,
-- and remember a summary among the outbox's recent deliveries.
-- KEYS[1] outbox event stream
-- KEYS[2] event's delivery record (hash)
-- KEYS[3] outbox retry set
-- KEYS[4] outbox dead-letter set
-- KEYS[5] outbox recent deliveries (list)
-- ARGV[1] consumer group
-- ARGV[2] stream entry id ('' when the delivery came from the retry set)
-- ARGV[3] event id (msg_...)
-- ARGV[4] delivery summary JSON
-- ARGV[5] how many recent deliveries to keep
-- returns 1
if ARGV[2] ~= '' then redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('LPUSH', KEYS[5], ARGV[4])
redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[5]) - 1)
return 1
