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
return group_values(KEYS[1], KEYS[2], result)
