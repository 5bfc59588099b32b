-- Prelude of the presence scripts. A group's presence keys are rebuilt from the deployment prefix and the group
-- suffix ``<n>:<stream>:<group>`` (keys.py), so an engine's list of members (``pe:<engine>``, fields
-- ``<connection id> <suffix>``) is enough to find and remove them: nothing scans the keyspace.
-- Connection ids are engine-made UUIDs: they hold no space.

local function presence_keys(prefix, suffix)
  return prefix .. 'pm:' .. suffix, prefix .. 'ps:' .. suffix, prefix .. 'pc:' .. suffix
end

local function presence_split(field)
  local space = string.find(field, ' ', 1, true)
  return string.sub(field, 1, space - 1), string.sub(field, space + 1)
end

-- Number a change of the group and publish it: {"seq":N,"action":"join"|"leave","member":{...}}.
local function presence_publish(seqkey, channel, action, member)
  local seq = redis.call('INCR', seqkey)
  redis.call('PUBLISH', channel, '{"seq":' .. seq .. ',"action":"' .. action .. '","member":' .. member .. '}')
end

-- Store a member; announce it if the group did not have it.
local function presence_put(members, seqkey, channel, connection, member)
  local known = redis.call('HEXISTS', members, connection) == 1
  redis.call('HSET', members, connection, member)
  if not known then
    presence_publish(seqkey, channel, 'join', member)
  end
end

-- Remove a member and announce its leave with ``member`` (default: as stored).
local function presence_remove(members, seqkey, channel, connection, member)
  local stored = redis.call('HGET', members, connection)
  if not stored then
    return 0
  end
  redis.call('HDEL', members, connection)
  presence_publish(seqkey, channel, 'leave', member or stored)
  if redis.call('HLEN', members) == 0 then
    redis.call('DEL', seqkey)  -- nobody is left to hold a position in it
  end
  return 1
end
