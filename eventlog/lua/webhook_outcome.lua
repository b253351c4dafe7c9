-- Record one delivery attempt of a webhook message, while this notifier still holds its lease:
-- its events are appended to the job's lane (the job's timeline shows them), and the message is
-- either due again (retry), or done (delivered, abandoned) and out of the due set; an abandoned
-- message goes to the partition's webhook dead letters as well.
-- KEYS: the message's hash, the partition's due set, the job's lane stream, the partition's
-- webhook dead letters.
-- ARGV: webhook id, the lease's end, outcome ("retry", "delivered" or "abandoned"), the next
-- due time in Unix ms (retry), attempts made, the done message's time to live in seconds, N,
-- the first event's N field/value strings, M, the second event's M strings (M may be 0), then
-- the dead letter's field/value strings (abandoned).
-- Returns 1 when written, 0 when the lease was lost (another notifier has the message).
local held = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not held or tonumber(held) ~= tonumber(ARGV[2]) then return 0 end
local i = 7
for _ = 1, 2 do
  local n = tonumber(ARGV[i])
  if n > 0 then redis.call('XADD', KEYS[3], '*', unpack(ARGV, i + 1, i + n)) end
  i = i + n + 1
end
redis.call('HSET', KEYS[1], 'attempts', ARGV[5])
if ARGV[3] == 'retry' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
  return 1
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'state', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[6])
if ARGV[3] == 'abandoned' and #ARGV >= i then
  redis.call('XADD', KEYS[4], '*', unpack(ARGV, i))
end
return 1
