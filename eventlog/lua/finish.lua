-- Finish an entry: only the consumer that still owns it may append the outcome, and the append
-- and the XACK land together (exactly one outcome per entry, however often it was delivered).
-- With a count of unfinished jobs (the lane's, which submit.lua raised), it goes down by one in
-- the same step, never below 0 (jobs accepted before counts existed finish too).
-- KEYS: stream, then the count when ARGV[4] is "1", then the dead-letter stream when the entry
-- goes there too.
-- ARGV: group, consumer, entry id, "1" with a count (else "0"), N, the outcome's N field/value
-- strings, then the dead-letter entry's field/value strings (when that stream is given).
-- Returns the new entry id, or false when the entry is no longer this consumer's.
local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #owned == 0 then return false end
local counted = ARGV[4] == '1'
local last = 5 + tonumber(ARGV[5])
local entry = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 6, last))
local letters = KEYS[2]
if counted then letters = KEYS[3] end
if letters then redis.call('XADD', letters, '*', unpack(ARGV, last + 1)) end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
if counted and tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
  redis.call('DECR', KEYS[2])
end
return entry
