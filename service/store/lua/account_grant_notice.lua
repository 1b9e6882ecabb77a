-- Record that an authenticationExpiring notice of one stage went out for an account's grant,
-- with its event, once per stage and deadline across any number of workers.
-- KEYS[1] account hash
-- KEYS[2] partition event stream
-- ARGV[1] grantDeadline the caller read (epoch ms)
-- ARGV[2] grantGen the caller read (a missing field counts as '0')
-- ARGV[3] the notice to record: '<deadline>:<stage>'
-- ARGV[4] the stage's rank (warning 1, final 2): a notice of this rank or above for the
--         same deadline means this one went out already
-- ARGV[5] event JSON to append ('' = none)
-- returns 1 when recorded; 0 when sent already, or the grant or its deadline changed, or
--         the account is not active (nothing written)
if redis.call('HGET', KEYS[1], 'status') ~= 'active' then return 0 end
if redis.call('HGET', KEYS[1], 'grantDeadline') ~= ARGV[1] then return 0 end
if (redis.call('HGET', KEYS[1], 'grantGen') or '0') ~= ARGV[2] then return 0 end
local sent = redis.call('HGET', KEYS[1], 'grantNotice') or ''
local sent_deadline, sent_stage = string.match(sent, '^(%d+):(%a+)$')
local ranks = {warning = 1, final = 2}
if sent_deadline == ARGV[1] and (ranks[sent_stage] or 0) >= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], 'grantNotice', ARGV[3])
if ARGV[5] ~= '' then redis.call('XADD', KEYS[2], '*', 'payload', ARGV[5]) end
return 1
