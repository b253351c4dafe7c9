-- Cancel a job unless its run has ended: append its JobCancelled, mark its run ended, take it
-- off its lane's count of unfinished jobs and the partition's deadlines, and acknowledge its
-- request entry (a consumer still working on it then finds the run ended and writes nothing; one
-- that reads it later, queued, starts nothing). With the reason "deadline", only once the job's
-- deadline (its score in the deadlines) has passed by the server's clock: it is then `expired`
-- when it never started, `timed_out` when it did.
-- KEYS: the job's run key, its lane's stream, the lane's count of unfinished jobs, the
-- partition's deadlines, the job's index (its request's entry id, first).
-- ARGV: group, run ttl s, the job's deadline member, the reason ("requested",
-- "batch_cancelled" or "deadline"), then the JobCancelled's field/value strings (the reason's
-- value is replaced by the one decided).
-- Returns {2, reason, entry id} when cancelled now, {0, run} when its run had ended, {3} when
-- its deadline has not passed, or it has none.
local state = redis.call('GET', KEYS[1])
if state and state ~= 'started' then return {0, state} end
local reason = ARGV[4]
if reason == 'deadline' then
  local due = redis.call('ZSCORE', KEYS[4], ARGV[3])
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  if not due or now < tonumber(due) then return {3} end
  reason = state and 'timed_out' or 'expired'
end
local fields = {unpack(ARGV, 5)}
for i = 1, #fields, 2 do
  if fields[i] == 'reason' then fields[i + 1] = reason end
end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('SET', KEYS[1], 'JobCancelled ' .. reason, 'EX', ARGV[2])
local index = redis.call('GET', KEYS[5])
if index then redis.call('XACK', KEYS[2], ARGV[1], string.match(index, '^%S+')) end
if tonumber(redis.call('GET', KEYS[3]) or '0') > 0 then redis.call('DECR', KEYS[3]) end
redis.call('ZREM', KEYS[4], ARGV[3])
return {2, reason, id}
