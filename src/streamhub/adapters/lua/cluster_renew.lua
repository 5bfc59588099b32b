-- Renew this engine's cluster lease (lease.lua), clean up after the engines it claimed, and read what every live
-- engine serves.
-- A claim is atomic (one claimer): the dead engine's announcement is deleted, its join guards move to the
-- orphaned guards hash (they stay in force, fail closed, until explicitly unregistered or replaced).
-- KEYS: the engines sorted set (id -> lease expiry, ms on the Redis clock), the orphaned guards hash.
-- ARGV: engine id, lease (ms), engines prefix (keys.engines_prefix), most engines claimed per call.
-- Returns {1 if this engine's lease was still there, engines claimed, {id, announcement, ...} of the other
-- live engines, {guard id, trigger JSON, ...} of the orphaned guards}.

local known, dead, now = lease_renew(KEYS[1], ARGV[1], ARGV[2], ARGV[4])
local prefix = ARGV[3]
for _, engine in ipairs(dead) do
  local key = prefix .. 'ca:' .. engine
  local raw = redis.call('GET', key)
  if raw then
    local ok, announcement = pcall(cjson.decode, raw)
    if ok and type(announcement) == 'table' and type(announcement.triggers) == 'table' then
      for id, entry in pairs(announcement.triggers) do
        if type(entry) == 'table' and entry[1] == 'stream:join' and type(entry[2]) == 'string' then
          redis.call('HSET', KEYS[2], id, entry[2])
        end
      end
    end
  end
  redis.call('DEL', key)
end
local claimed = #dead
local live = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  if id ~= ARGV[1] then
    local raw = redis.call('GET', prefix .. 'ca:' .. id)
    if raw then
      table.insert(live, id)
      table.insert(live, raw)
    end
  end
end
return {known and 1 or 0, claimed, live, redis.call('HGETALL', KEYS[2])}
