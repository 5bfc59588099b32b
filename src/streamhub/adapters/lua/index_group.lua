-- Redis Cluster: add a group to its stream's group index (ranked by first addition) unless it is there already.
-- KEYS: groups zset of the stream.  ARGV: group.

if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  append_ranked(KEYS[1], ARGV[1])
end
return 1
