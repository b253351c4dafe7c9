-- Keep what the notifier needs to know of a job that has a webhook: its webhook, and every
-- event of it seen so far (by entry id, so a fold can put them back in log order), until its
-- completed message is scheduled. Events of jobs without a webhook are not kept.
-- A job's entries may be read in any order (several notifiers share a lane, and a claimed entry
-- comes late): an event of a job not known yet looks up the job's request through its index
-- (its entry id) in the lane's stream, and makes the job known from it when it has a webhook.
-- KEYS: the job's webhook hash, the stream of the entry's lane (the job's request's too), the
-- job's index.
-- ARGV: kind ("request", "event" or "trigger"), entry id, the entry's fields as JSON, the
-- hash's time to live in seconds; for a request, then its webhook URL, filter, tenant and lane.
-- Returns, for a trigger of a job with a webhook, the hash's field/value pairs; else 0 or 1.
if ARGV[1] == 'request' then
  redis.call('HSET', KEYS[1], 'e:' .. ARGV[2], ARGV[3], 'url', ARGV[5], 'filter', ARGV[6],
    'tenant', ARGV[7], 'lane', ARGV[8])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  return 1
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  local index = redis.call('GET', KEYS[3])
  if not index then return 0 end
  local request_id = string.match(index, '^(%S+)')
  local found = redis.call('XRANGE', KEYS[2], request_id, request_id)
  if #found == 0 then return 0 end
  local flat, fields = found[1][2], {}
  for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
  if not fields['webhook'] or fields['webhook'] == '' then return 0 end
  redis.call('HSET', KEYS[1], 'e:' .. request_id, cjson.encode(fields),
    'url', fields['webhook'], 'filter', fields['webhook_events_filter'] or 'completed',
    'tenant', fields['tenant'] or 'default', 'lane', fields['lane'] or 'interactive')
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
redis.call('HSET', KEYS[1], 'e:' .. ARGV[2], ARGV[3])
if ARGV[1] == 'trigger' then return redis.call('HGETALL', KEYS[1]) end
return 1
