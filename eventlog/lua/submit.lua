-- Append one job's JobRequested to its lane's stream and index the job, unless the index shows
-- the job on the log already: a request coming again under an Idempotency-Key whose job the
-- first request had reserved (reserve.lua) then appends it at most once. A lane other than the
-- partition's default one is added to the partition's set of lanes, where readers find it.
-- The lane's count of unfinished jobs goes up by one (finish.lua takes it down); with a cap,
-- the job is refused when the tenant's two lanes of this partition hold that many already.
-- A job with a deadline goes into the partition's deadlines, scored by it, in the same step
-- (consumers cancel it from there once it has passed: eventlog.runs).
-- KEYS: the lane's stream, the partition's set of lanes, the job index key, the lane's count,
-- the count of the tenant's other lane, the partition's deadlines (all in the partition's slot)
-- ARGV: job id, job index ttl s, the lane's name ("" for the default lane), cap (0: none), the
-- deadline in Unix ms ("" for none), its member in the deadlines, then the event's field/value
-- pairs
-- Returns {1, job_id, entry_id} when appended, {0, job_id, index value} when it was there
-- already, {2, job_id, count} when the cap refused it.
local known = redis.call('GET', KEYS[3])
if known then return {0, ARGV[1], known} end
local cap = tonumber(ARGV[4])
if cap > 0 then
  local queued = tonumber(redis.call('GET', KEYS[4]) or '0') + tonumber(redis.call('GET', KEYS[5]) or '0')
  if queued >= cap then return {2, ARGV[1], tostring(queued)} end
end
local entry = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 7))
local where = entry
if ARGV[3] ~= '' then
  redis.call('SADD', KEYS[2], ARGV[3])
  where = entry .. ' ' .. ARGV[3]
end
redis.call('SET', KEYS[3], where, 'EX', ARGV[2])
redis.call('INCR', KEYS[4])
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[6], ARGV[5], ARGV[6]) end
return {1, ARGV[1], entry}
