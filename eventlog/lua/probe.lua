-- Touches nothing: called with keys that a submission would use together (a partition's stream
-- and job index, or an Idempotency-Key's record), it fails exactly where a submission would for
-- the keys' placement (CROSSSLOT, MOVED, no master for the slot), and returns how many keys it
-- was given otherwise.
-- KEYS: as for submit.lua, or as for reserve.lua. ARGV: none.
return #KEYS
