-- A login succeeded: start its session, clear the IP's failures and give back the attempt
-- reserved on the account's counter (failures from elsewhere still count there).
-- KEYS[1] the new session's key
-- KEYS[2] failed-login counter of the client IP
-- KEYS[3] failed-login counter of the account name
-- ARGV[1] the password generation the session belongs to
-- ARGV[2] the session's lifetime, s
-- returns 1
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('DEL', KEYS[2])
if tonumber(redis.call('GET', KEYS[3]) or '0') > 0 then redis.call('DECR', KEYS[3]) end
return 1
