-- Redis Cluster: add or replace one member of a group, noting which engine holds it (a join is announced only if
-- the group did not have the connection). The engine listed the member in its own list first (another slot).
-- KEYS: members hash, seq counter, owners hash (connection id -> engine id).
-- ARGV: connection id, member JSON, channel, engine id.

presence_put(KEYS[1], KEYS[2], ARGV[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
return 1
