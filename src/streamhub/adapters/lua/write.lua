-- Store one item and publish its event in the same atomic step, so the channel's order is the commit order.
-- KEYS: items hash, order zset, position hash, change log list[, groups zset of the stream, streams set].
--       Without the two index keys (Redis Cluster: they live in other slots) the caller keeps the indexes.
-- ARGV: item, new JSON, stream, group, channel, event head (to_wire() JSON up to the event type),
--       mode ('set' = unconditional, 'cas' = only if the stored JSON is still ARGV[8], '' meaning missing), expected,
--       epoch candidate, log size, log age (ms).
-- Returns {1, old JSON or nil, offset, unindexed} once written (unindexed = 1 when the caller must add the group
-- to the indexes: no index keys were given and the group is not marked indexed yet), {0, current JSON or nil}
-- when a 'cas' found another value.

local old = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[7] == 'cas' and (old or '') ~= ARGV[8] then
  return {0, old}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local kind = 'update'
local unindexed = 0
if not old then
  kind = 'create'
  -- A group whose order set already held an item is indexed (delete.lua unindexes it only once it is empty).
  if append_ranked(KEYS[2], ARGV[1]) == 0 and KEYS[5] and not redis.call('ZSCORE', KEYS[5], ARGV[4]) then
    append_ranked(KEYS[5], ARGV[4])
    redis.call('SADD', KEYS[6], ARGV[3])
  end
end
if not KEYS[5] and redis.call('HEXISTS', KEYS[3], 'indexed') == 0 then
  unindexed = 1
end
local head = ARGV[6] .. kind .. '","data":' .. ARGV[2] .. '}'
local offset = record(KEYS[3], KEYS[4], ARGV[5], head, ARGV[9], ARGV[10], ARGV[11])
return {1, old, offset, unindexed}
