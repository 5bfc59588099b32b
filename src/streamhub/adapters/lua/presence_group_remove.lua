-- Redis Cluster: remove one member of a group and announce its leave (nothing if the group does not have it).
-- A sweep passes the dead engine's id: a member another engine holds now (the same engine under a new id, after
-- it was claimed while cut off and announced its members again) is left alone, so a late sweep never undoes that.
-- KEYS: members hash, seq counter, owners hash.
-- ARGV: connection id, channel, the member JSON as it was ('' = as stored), engine id that must hold it ('' = any).
-- Returns 1 if the member was removed.

if ARGV[4] ~= '' and redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[4] then
  return 0
end
redis.call('HDEL', KEYS[3], ARGV[1])
local removed = presence_remove(KEYS[1], KEYS[2], ARGV[2], ARGV[1], ARGV[3] ~= '' and ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[3])
end
return removed
