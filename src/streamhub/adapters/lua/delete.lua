-- Remove one item, drop its group and stream from the indexes once empty, and publish the event atomically.
-- KEYS: items hash, order zset, groups zset of the stream, streams set, position hash, change log list.
-- ARGV: item, stream, group, channel, event head (to_wire() JSON up to the event type),
--       epoch candidate, log size, log age (ms).
-- Returns {removed JSON, offset}, or nil (and publishes nothing) when the item did not exist.

local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then
  return false
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[3], ARGV[3])
  if redis.call('EXISTS', KEYS[3]) == 0 then
    redis.call('SREM', KEYS[4], ARGV[2])
  end
end
local offset = record(KEYS[5], KEYS[6], ARGV[4], ARGV[5] .. 'delete","data":' .. old .. '}', ARGV[6], ARGV[7], ARGV[8])
return {old, offset}
