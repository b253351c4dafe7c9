-- Set the idle time of each entry this consumer still owns: 0 keeps a long job from being
-- claimed (heartbeat); the claim threshold hands an entry back for others to claim at once.
-- XCLAIM with JUSTID does not count as a delivery.
-- KEYS: stream. ARGV: group, consumer, idle ms, then entry ids.
-- Returns how many entries were reset.
local reset = 0
for i = 4, #ARGV do
  local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #owned == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
    reset = reset + 1
  end
end
return reset
