-- A group's values (in first-creation order) or one item's value, with the group's position, in one atomic step.
-- KEYS: items hash, order zset, position hash.
-- ARGV: 'group' or 'item', item id (for 'item'), epoch candidate (a group never written gets its epoch now).
-- Returns {epoch, offset, values...} for a group, {epoch, offset, value or nil} for an item.

redis.call('HSETNX', KEYS[3], 'epoch', ARGV[3])
local position = redis.call('HMGET', KEYS[3], 'epoch', 'offset')
local result = {position[1], position[2] or '0'}
if ARGV[1] == 'item' then
  result[3] = redis.call('HGET', KEYS[1], ARGV[2])
  return result
end
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
for first = 1, #ids, 1000 do
  local chunk = redis.call('HMGET', KEYS[1], unpack(ids, first, math.min(first + 999, #ids)))
  for i = 1, #chunk do
    result[#result + 1] = chunk[i]
  end
end
return result
