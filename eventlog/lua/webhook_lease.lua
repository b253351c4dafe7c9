-- Lease the due webhook messages of a partition: each is moved to the lease's end in the due
-- set, so that no other notifier takes it meanwhile, and it comes due again by itself if this
-- one dies before it writes the attempt's outcome. The lease's end is the fencing token: only
-- the holder of the score it set may write the outcome (webhook_outcome.lua).
-- KEYS: the partition's due set. ARGV: now in Unix ms, the lease in ms, most messages.
-- Returns {lease end, webhook id, ...}.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local lease = tostring(tonumber(ARGV[1]) + tonumber(ARGV[2]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], lease, id) end
table.insert(due, 1, lease)
return due
