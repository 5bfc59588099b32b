-- Replace what this engine serves, drop orphaned join guards it replaced or unregistered, and tell the others.
-- KEYS: this engine's announcement, the orphaned guards hash.
-- ARGV: announcement JSON, notices channel, engine id, then orphaned guard ids to drop.

redis.call('SET', KEYS[1], ARGV[1])
for i = 4, #ARGV do
  redis.call('HDEL', KEYS[2], ARGV[i])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
