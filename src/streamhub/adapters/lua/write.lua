-- Store one item and publish its event in the same atomic step, so the channel's order is the commit order.
-- KEYS: items hash, order zset, groups zset of the stream, streams set, position hash, change log list.
-- ARGV: item, new JSON, stream, group, channel, event head (to_wire() JSON up to the event type),
--       mode ('set' = unconditional, 'cas' = only if the stored JSON is still ARGV[8], '' meaning missing), expected,
--       epoch candidate, log size, log age (ms).
-- Returns {1, old JSON or nil, offset} once written, {0, current JSON or nil} when a 'cas' found another value.

local function append_ranked(key, member)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  local rank = 0
  if last[2] then
    rank = tonumber(last[2]) + 1
  end
  redis.call('ZADD', key, rank, member)
end

local old = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[7] == 'cas' and (old or '') ~= ARGV[8] then
  return {0, old}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local kind = 'update'
if not old then
  kind = 'create'
  append_ranked(KEYS[2], ARGV[1])
  if not redis.call('ZSCORE', KEYS[3], ARGV[4]) then
    append_ranked(KEYS[3], ARGV[4])
    redis.call('SADD', KEYS[4], ARGV[3])
  end
end
local head = ARGV[6] .. kind .. '","data":' .. ARGV[2] .. '}'
local offset = record(KEYS[5], KEYS[6], ARGV[5], head, ARGV[9], ARGV[10], ARGV[11])
return {1, old, offset}
