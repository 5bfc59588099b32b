-- Add or replace one member of a group (a join is announced only if the group did not have the connection).
-- KEYS: members hash, seq counter, this engine's member list.
-- ARGV: connection id, member JSON, channel, engine list field.

presence_put(KEYS[1], KEYS[2], ARGV[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[4], '1')
return 1
