-- Append a batch of jobs of one lane of one partition: for every item, in order, what
-- submit.lua does for one (a cap refuses the items past it). Every event is a JobRequested, so
-- the field names are sent once and only each item's values after them.
-- KEYS: the lane's stream, the partition's set of lanes, the lane's count of unfinished jobs,
-- the count of the tenant's other lane, the partition's deadlines, then each item's job index
-- key.
-- ARGV: job index ttl s, the lane's name ("" for the default lane), cap (0: none), the lane's
-- name in deadline members, N, the N field names of every event, then for each item its N field
-- values (the job id is the value of the field `job_id`) and its deadline in Unix ms ("" for
-- none), which puts it into the deadlines as submit.lua does.
-- Returns, for each item in order, {1, job_id, entry_id} when appended,
-- {0, job_id, index value} when the job was on the log already, or {2, job_id, count} when the
-- cap refused it.
local n = tonumber(ARGV[5])
local fields, id_at = {}, 0
for f = 1, n do
  fields[2 * f - 1] = ARGV[5 + f]
  if ARGV[5 + f] == 'job_id' then id_at = 2 * f end
end
if id_at == 0 then return redis.error_reply('no job_id field') end
local lane, cap = ARGV[2], tonumber(ARGV[3])
if lane ~= '' then redis.call('SADD', KEYS[2], lane) end
local queued = tonumber(redis.call('GET', KEYS[3]) or '0') + tonumber(redis.call('GET', KEYS[4]) or '0')
local added = 0
local replies, at = {}, 6 + n
for i = 6, #KEYS do
  for f = 1, n do fields[2 * f] = ARGV[at + f - 1] end
  local deadline = ARGV[at + n]
  at = at + n + 1
  local job_id = fields[id_at]
  local known = redis.call('GET', KEYS[i])
  if known then
    replies[i - 5] = {0, job_id, known}
  elseif cap > 0 and queued + added >= cap then
    replies[i - 5] = {2, job_id, tostring(queued + added)}
  else
    local entry = redis.call('XADD', KEYS[1], '*', unpack(fields))
    local where = entry
    if lane ~= '' then where = entry .. ' ' .. lane end
    redis.call('SET', KEYS[i], where, 'EX', ARGV[1])
    if deadline ~= '' then redis.call('ZADD', KEYS[5], deadline, job_id .. ' ' .. ARGV[4]) end
    added = added + 1
    replies[i - 5] = {1, job_id, entry}
  end
end
if added > 0 then redis.call('INCRBY', KEYS[3], added) end
return replies
