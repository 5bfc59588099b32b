-- The group's change log and last offset, if the epoch is still the one the client knows.
-- KEYS: position hash, change log list.  ARGV: epoch.
-- Returns {offset, {event JSON...}}, or nil when the epoch differs (history was lost: a fresh snapshot is due).

local position = redis.call('HMGET', KEYS[1], 'epoch', 'offset')
if position[1] ~= ARGV[1] then
  return false
end
return {position[2] or '0', redis.call('LRANGE', KEYS[2], 0, -1)}
