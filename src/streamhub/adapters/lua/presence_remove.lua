-- Remove one member of a group and announce its leave (nothing if the group does not have it).
-- KEYS: members hash, seq counter, this engine's member list.
-- ARGV: connection id, channel, engine list field, the member JSON as it was.

redis.call('HDEL', KEYS[3], ARGV[3])
return presence_remove(KEYS[1], KEYS[2], ARGV[2], ARGV[1], ARGV[4])
