-- Send an abandoned webhook message again: the dead letter is removed and the message is due
-- now, with its attempts counted from zero and its webhook id unchanged (receivers still
-- deduplicate it). Only once per letter: a letter already redriven is not there to remove.
-- KEYS: the partition's webhook dead letters, the message's hash, the partition's due set.
-- ARGV: the letter's entry id, webhook id, due time in Unix ms, the message hash's time to
-- live in seconds, then the message's field/value strings.
-- Returns 1 when redriven, 0 when there was no such letter.
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return 1
