-- Keep what the notifier needs to know of a job that has a webhook: its webhook, and every
-- event of it seen so far (by entry id, so a fold can put them back in log order), until its
-- completed message is scheduled. Events of jobs without a webhook are not kept.
-- KEYS: the job's webhook hash.
-- ARGV: kind ("request", "event" or "trigger"), entry id, the entry's fields as JSON; for a
-- request, then its webhook URL, filter, tenant, lane and the hash's time to live in seconds.
-- Returns, for a trigger of a job with a webhook, the hash's field/value pairs; else 0 or 1.
if ARGV[1] == 'request' then
  redis.call('HSET', KEYS[1], 'e:' .. ARGV[2], ARGV[3], 'url', ARGV[4], 'filter', ARGV[5],
    'tenant', ARGV[6], 'lane', ARGV[7])
  redis.call('EXPIRE', KEYS[1], ARGV[8])
  return 1
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'e:' .. ARGV[2], ARGV[3])
if ARGV[1] == 'trigger' then return redis.call('HGETALL', KEYS[1]) end
return 1
