-- Begin a lane's jobs: for each request entry, in order, append its JobStarted and mark its run
-- started, unless its run has ended (it was cancelled while queued: the entry is acknowledged and
-- nothing is appended), its batch was cancelled or its deadline has passed by the server's clock
-- (then it ends here, cancelled, without running: the same writes as cancel.lua). A job delivered
-- again (its consumer died while it ran) starts again.
-- KEYS: the lane's stream, the lane's count of unfinished jobs, the partition's deadlines, then
-- for each job its run key and its batch's cancelled key (its run key again when it has none).
-- ARGV: group, run ttl s, the lane's name (of deadline members), S, a JobStarted's S field/value
-- strings, C, a JobCancelled's C field/value strings (each job's id and reason go in them), then
-- for each job: its entry id, job id and deadline in Unix ms ("" for none).
-- Returns for each job, in order: {1} started, {0, run} ended before, {2, reason, entry id}
-- cancelled now.
local function at(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return i + 1 end
  end
end
local s = tonumber(ARGV[4])
local started = {unpack(ARGV, 5, 4 + s)}
local c = tonumber(ARGV[5 + s])
local cancelled = {unpack(ARGV, 6 + s, 5 + s + c)}
local started_id = at(started, 'job_id')
local cancelled_id, cancelled_reason = at(cancelled, 'job_id'), at(cancelled, 'reason')
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local replies, next = {}, 6 + s + c
for j = 1, (#KEYS - 3) / 2 do
  local run, batch = KEYS[2 + 2 * j], KEYS[3 + 2 * j]
  local entry, job_id, deadline = ARGV[next], ARGV[next + 1], ARGV[next + 2]
  next = next + 3
  -- Marked started at once when it never was (most jobs: one command); else as it stands.
  local state = false
  if not redis.call('SET', run, 'started', 'NX', 'EX', ARGV[2]) then
    state = redis.call('GET', run)
  end
  if state and state ~= 'started' then
    redis.call('XACK', KEYS[1], ARGV[1], entry)
    replies[j] = {0, state}
  else
    local reason = false
    if batch ~= run and redis.call('EXISTS', batch) == 1 then
      reason = 'batch_cancelled'
    elseif deadline ~= '' and now >= tonumber(deadline) then
      reason = state and 'timed_out' or 'expired'
    end
    if reason then
      cancelled[cancelled_id], cancelled[cancelled_reason] = job_id, reason
      local id = redis.call('XADD', KEYS[1], '*', unpack(cancelled))
      redis.call('SET', run, 'JobCancelled ' .. reason, 'EX', ARGV[2])
      redis.call('XACK', KEYS[1], ARGV[1], entry)
      if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
      if deadline ~= '' then redis.call('ZREM', KEYS[3], job_id .. ' ' .. ARGV[3]) end
      replies[j] = {2, reason, id}
    else
      started[started_id] = job_id
      redis.call('XADD', KEYS[1], '*', unpack(started))
      replies[j] = {1}
    end
  end
end
return replies
