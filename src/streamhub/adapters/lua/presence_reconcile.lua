-- Make Redis hold exactly this engine's members (after Redis lost them, a claim while this engine was cut off,
-- a failed write, or at shutdown with none): members it no longer has leave, missing ones join again.
-- KEYS: this engine's member list.
-- ARGV: key prefix, then per member: connection id, group suffix, member JSON.

local prefix = ARGV[1]
local wanted = {}
for i = 2, #ARGV, 3 do
  wanted[ARGV[i] .. ' ' .. ARGV[i + 1]] = ARGV[i + 2]
end
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if not wanted[field] then
    local connection, suffix = presence_split(field)
    local members, seqkey, channel = presence_keys(prefix, suffix)
    presence_remove(members, seqkey, channel, connection, false)
    redis.call('HDEL', KEYS[1], field)
  end
end
for field, member in pairs(wanted) do
  local connection, suffix = presence_split(field)
  local members, seqkey, channel = presence_keys(prefix, suffix)
  presence_put(members, seqkey, channel, connection, member)
  redis.call('HSET', KEYS[1], field, '1')
end
return 1
