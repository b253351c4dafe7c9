-- Append a batch of jobs of one lane of one partition: for every item, in order, what
-- submit.lua does for one (a cap refuses the items past it). Every event is a JobRequested, so
-- the field names are sent once and only each item's values after them.
-- KEYS: the lane's stream, the partition's set of lanes, the lane's count of unfinished jobs,
-- the count of the tenant's other lane, then each item's job index key.
-- ARGV: job index ttl s, the lane's name ("" for the default lane), cap (0: none), N, the N
-- field names of every event, then each item's N field values (the job id is the value of the
-- field `job_id`).
-- Returns, for each item in order, {1, job_id, entry_id} when appended,
-- {0, job_id, index value} when the job was on the log already, or {2, job_id, count} when the
-- cap refused it.
local n = tonumber(ARGV[4])
local fields, id_at = {}, 0
for f = 1, n do
  fields[2 * f - 1] = ARGV[4 + f]
  if ARGV[4 + f] == 'job_id' then id_at = 2 * f end
end
if id_at == 0 then return redis.error_reply('no job_id field') end
local lane, cap = ARGV[2], tonumber(ARGV[3])
if lane ~= '' then redis.call('SADD', KEYS[2], lane) end
local queued = tonumber(redis.call('GET', KEYS[3]) or '0') + tonumber(redis.call('GET', KEYS[4]) or '0')
local added = 0
local replies, at = {}, 5 + n
for i = 5, #KEYS do
  for f = 1, n do fields[2 * f] = ARGV[at + f - 1] end
  at = at + n
  local job_id = fields[id_at]
  local known = redis.call('GET', KEYS[i])
  if known then
    replies[i - 4] = {0, job_id, known}
  elseif cap > 0 and queued + added >= cap then
    replies[i - 4] = {2, job_id, tostring(queued + added)}
  else
    local entry = redis.call('XADD', KEYS[1], '*', unpack(fields))
    local where = entry
    if lane ~= '' then where = entry .. ' ' .. lane end
    redis.call('SET', KEYS[i], where, 'EX', ARGV[1])
    added = added + 1
    replies[i - 4] = {1, job_id, entry}
  end
end
if added > 0 then redis.call('INCRBY', KEYS[3], added) end
return replies
