-- Set a mark that lives a while: a batch's cancel in one partition (Names.batch_cancelled),
-- which START and FINISH read there. A script, not a SET, so that it runs where the other
-- scripts do (on the master of its slot, waited for by replicas like them).
-- KEYS: the mark. ARGV: ttl s.
-- Returns 1.
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
