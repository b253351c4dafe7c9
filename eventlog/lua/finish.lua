-- Finish an entry: only the consumer that still owns it may append the outcome, and the append
-- and the XACK land together (exactly one outcome per entry, however often it was delivered).
-- A group that tracks runs (eventlog.runs) also writes nothing when the job's run has ended (it
-- was cancelled while it ran: the entry is only acknowledged), and writes a JobCancelled instead
-- of the outcome when the job's batch was cancelled or its deadline has passed by the server's
-- clock; either way its run key then says how it ended. With a count of unfinished jobs (the
-- lane's, which submit.lua raised), it goes down by one in the same step, never below 0 (jobs
-- accepted before counts existed finish too).
-- KEYS: the stream, the job's run key (the stream again for a group that does not track runs),
-- the partition's deadlines, the job's batch's cancelled key (the run key again when it has
-- none), then the count when ARGV[4] is "1", then the dead-letter stream when the entry goes
-- there too.
-- ARGV: group, consumer, entry id, "1" with a count (else "0"), run ttl s, deadline in Unix ms
-- ("" for none), the job's deadline member, N, the outcome's N field/value strings, C, a
-- JobCancelled's C field/value strings (0 of them when neither batch nor deadline can cancel it;
-- its reason is replaced), then the dead-letter entry's field/value strings (when that stream is
-- given).
-- Returns {1, entry id} when the outcome was written, {-1} when the entry is no longer this
-- consumer's, {0, run} when the job had ended, {2, reason, entry id} when it was cancelled now.
local tracked = KEYS[2] ~= KEYS[1]
if tracked then
  local state = redis.call('GET', KEYS[2])
  if state and state ~= 'started' then
    redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
    return {0, state}
  end
end
local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #owned == 0 then return {-1} end
local counted = ARGV[4] == '1'
local n = tonumber(ARGV[8])
local c = tonumber(ARGV[9 + n])
local letters_at = 10 + n + c
local reason = false
if tracked then
  if KEYS[4] ~= KEYS[2] and redis.call('EXISTS', KEYS[4]) == 1 then
    reason = 'batch_cancelled'
  elseif ARGV[6] ~= '' then
    local clock = redis.call('TIME')
    local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
    if now >= tonumber(ARGV[6]) then reason = 'timed_out' end
  end
end
local reply
if reason then
  local fields = {unpack(ARGV, 10 + n, 9 + n + c)}
  for i = 1, #fields, 2 do
    if fields[i] == 'reason' then fields[i + 1] = reason end
  end
  reply = {2, reason, redis.call('XADD', KEYS[1], '*', unpack(fields))}
  redis.call('SET', KEYS[2], 'JobCancelled ' .. reason, 'EX', ARGV[5])
else
  local entry = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 9, 8 + n))
  local letters = KEYS[5]
  if counted then letters = KEYS[6] end
  if letters then redis.call('XADD', letters, '*', unpack(ARGV, letters_at)) end
  if tracked then redis.call('SET', KEYS[2], ARGV[10], 'EX', ARGV[5]) end
  reply = {1, entry}
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
if counted and tonumber(redis.call('GET', KEYS[5]) or '0') > 0 then
  redis.call('DECR', KEYS[5])
end
if tracked and ARGV[6] ~= '' then redis.call('ZREM', KEYS[3], ARGV[7]) end
return reply
