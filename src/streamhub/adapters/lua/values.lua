-- Prelude of the scripts that read a whole group: its values in first-creation order, in chunks so a large group
-- never overflows Lua's unpack limit.

local function group_values(items, order, into)
  local ids = redis.call('ZRANGE', order, 0, -1)
  for first = 1, #ids, 1000 do
    local chunk = redis.call('HMGET', items, unpack(ids, first, math.min(first + 999, #ids)))
    for i = 1, #chunk do
      into[#into + 1] = chunk[i]
    end
  end
  return into
end

