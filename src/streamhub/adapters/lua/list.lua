-- The values of a group's items in first-creation order, read in one atomic step.
-- KEYS: items hash, order zset.

local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
local values = {}
for first = 1, #ids, 1000 do
  local chunk = redis.call('HMGET', KEYS[1], unpack(ids, first, math.min(first + 999, #ids)))
  for i = 1, #chunk do
    values[#values + 1] = chunk[i]
  end
end
return values
