-- Append a non-terminal event of a running job (JobRetrying), only while its run has not ended:
-- a job cancelled while it runs gets nothing after its JobCancelled.
-- KEYS: the job's lane stream, its run key. ARGV: the event's field/value strings.
-- Returns the new entry id, or false when the run has ended.
local run = redis.call('GET', KEYS[2])
if run and run ~= 'started' then return false end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV))
