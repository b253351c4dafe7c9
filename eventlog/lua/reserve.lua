-- Bind an Idempotency-Key to a job id and a request fingerprint, unless it is bound already.
-- The key's record has a slot of its own (its hash tag is the key), apart from any partition, so
-- that one key names one job whatever the number of partitions; the job is appended after this,
-- by submit.lua, which appends a job id at most once.
-- KEYS: the key's record. ARGV: job id, fingerprint, ttl s.
-- Returns {1, job_id, fingerprint} when bound now, {0, job_id, fingerprint} of the earlier binding.
local known = redis.call('HMGET', KEYS[1], 'job_id', 'fingerprint')
if known[1] then return {0, known[1], known[2]} end
redis.call('HSET', KEYS[1], 'job_id', ARGV[1], 'fingerprint', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, ARGV[1], ARGV[2]}
