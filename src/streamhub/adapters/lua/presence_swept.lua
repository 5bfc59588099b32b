-- Redis Cluster: the members of a claimed engine listed in ARGV are gone from their groups; forget them, and the
-- sweep once nothing is left of it.
-- KEYS: the sweeps sorted set, the dead engine's sweep list. ARGV: dead engine id, then the list fields done.

for i = 2, #ARGV do
  redis.call('HDEL', KEYS[2], ARGV[i])
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 1
