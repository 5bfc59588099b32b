-- Read a group's members in one consistent step with the seq they reflect.
-- KEYS: members hash, seq counter. ARGV: most members to return.
-- Returns {count, seq, member JSON...} (at least ``limit`` members when the group has that many).

local count = redis.call('HLEN', KEYS[1])
local out = {count, tonumber(redis.call('GET', KEYS[2]) or '0')}
local limit = tonumber(ARGV[1])
if count <= limit then
  for _, member in ipairs(redis.call('HVALS', KEYS[1])) do
    out[#out + 1] = member
  end
  return out
end
local cursor = '0'
repeat
  local page = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', 256)
  cursor = page[1]
  for i = 2, #page[2], 2 do
    out[#out + 1] = page[2][i]
  end
until cursor == '0' or #out - 2 >= limit
return out
