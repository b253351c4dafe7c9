-- Schedule a webhook message, once: a message that exists already (scheduled, delivered or
-- abandoned: its hash outlives it) is left as it is, so reading its trigger again (an entry
-- claimed after a crash) sends nothing twice. The job's webhook hash is dropped with its last
-- message.
-- KEYS: the message's hash, the partition's due set, the job's webhook hash.
-- ARGV: webhook id, due time in Unix ms, "1" to drop the job's hash (else "0"), the message
-- hash's time to live in seconds, then the message's field/value strings.
-- Returns 1 when scheduled now, 0 when it was already.
local created = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 5))
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  created = 1
end
if ARGV[3] == '1' then redis.call('DEL', KEYS[3]) end
return created
