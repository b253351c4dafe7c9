-- Charge one request to several rate buckets at once (GCRA), all or nothing: the request passes
-- only if every bucket has room for its cost, and then every bucket is charged; if any bucket
-- refuses, none is. Time is the server's (TIME), never a client's, so every API process counts
-- on one clock.
-- A bucket's key holds its theoretical arrival time (TAT): microseconds of that clock, at which
-- the bucket is full again. A unit takes one emission interval to come back; the bucket lets a
-- request through while its TAT, the request's cost added, lies at most burst intervals ahead.
-- The key expires at its TAT, when the bucket is full again, so an idle bucket takes no memory.
-- A request charged with a receipt (a key of its own, kept receipt_ms) is charged once however
-- often the call is sent: a call sent again (by a client whose connection dropped before the
-- reply) gets the first call's reply back and charges nothing.
-- KEYS: the request's receipt (when ARGV[1] is above 0; else any of the buckets' keys, not
-- touched), then the buckets' keys, all of one hash tag (one tenant's slot).
-- ARGV: receipt_ms (0: no receipt), then for each bucket in KEYS' order, three values: its
-- emission interval in microseconds (1e6 / units per second), its burst (units), the request's
-- cost (units; 0 only looks).
-- Returns {allowed, retry_us, then for each bucket: remaining, reset_us, verdict}: allowed is
-- 1 or 0; retry_us the wait until this request would pass (0 when allowed, -1 when it never
-- can); remaining the whole units left after this request (nothing is charged when refused);
-- reset_us the wait until the bucket is full again; verdict 0 (room), 1 (no room now), or 2
-- (never: the cost is above the burst).
if #ARGV ~= 3 * (#KEYS - 1) + 1 then return redis.error_reply('three arguments per bucket') end
local receipt_ms = tonumber(ARGV[1])
if receipt_ms > 0 then
  local given = redis.call('GET', KEYS[1])
  if given then return cjson.decode(given) end
end
-- Float sums of intervals land within a fraction of a microsecond of the exact time: a request
-- that far early counts as on time.
local SLACK = 1
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local buckets, allowed, never, retry = {}, true, false, 0
for i = 1, #KEYS - 1 do
  local interval = tonumber(ARGV[3 * i - 1])
  local burst = tonumber(ARGV[3 * i])
  local cost = tonumber(ARGV[3 * i + 1])
  local tat = math.max(tonumber(redis.call('GET', KEYS[i + 1]) or 0), now)
  local charged = tat + cost * interval
  local wait = charged - burst * interval - now
  local verdict = 0
  if cost > burst then
    verdict, never = 2, true
  elseif wait > SLACK then
    verdict, retry = 1, math.max(retry, wait)
  end
  if verdict ~= 0 then allowed = false end
  buckets[i] = {interval, burst, cost, tat, charged, verdict}
end
local reply = {allowed and 1 or 0, 0}
if never then
  reply[2] = -1
elseif not allowed then
  reply[2] = math.ceil(retry)
end
for i, b in ipairs(buckets) do
  local interval, burst, cost, tat, charged, verdict = unpack(b)
  if allowed then
    tat = charged
    if cost > 0 then
      local ttl_ms = math.ceil((tat - now) / 1000)
      redis.call('SET', KEYS[i + 1], string.format('%.17g', tat), 'PX', ttl_ms)
    end
  end
  local left = math.floor((burst * interval - (tat - now) + SLACK) / interval)
  reply[3 * i] = math.max(0, math.min(burst, left))
  reply[3 * i + 1] = math.ceil(tat - now)
  reply[3 * i + 2] = verdict
end
if receipt_ms > 0 then redis.call('SET', KEYS[1], cjson.encode(reply), 'PX', receipt_ms) end
return reply
