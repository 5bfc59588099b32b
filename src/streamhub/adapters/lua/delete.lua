-- Remove one item, drop its group and stream from the indexes once empty, and publish the event atomically.
-- KEYS: items hash, order zset, position hash, change log list[, groups zset of the stream, streams set].
--       Without the two index keys (Redis Cluster) the caller drops an emptied group from the indexes.
-- ARGV: item, stream, group, channel, event head (to_wire() JSON up to the event type),
--       epoch candidate, log size, log age (ms).
-- Returns {removed JSON, offset, emptied} (emptied = 1 when the group lost its last item and no index keys were
-- given), or nil (and publishes nothing) when the item did not exist.

local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then
  return false
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local emptied = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  if KEYS[5] then
    redis.call('ZREM', KEYS[5], ARGV[3])
    if redis.call('EXISTS', KEYS[5]) == 0 then
      redis.call('SREM', KEYS[6], ARGV[2])
    end
  else
    redis.call('HDEL', KEYS[3], 'indexed')
    emptied = 1
  end
end
local offset = record(KEYS[3], KEYS[4], ARGV[4], ARGV[5] .. 'delete","data":' .. old .. '}', ARGV[6], ARGV[7], ARGV[8])
return {old, offset, emptied}
