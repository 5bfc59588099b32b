-- Renew this engine's cluster lease, claim engines whose lease ran out, and read what every live engine serves.
-- A claim is atomic (one claimer): the dead engine's announcement is deleted, its join guards move to the
-- orphaned guards hash (they stay in force, fail closed, until explicitly unregistered or replaced).
-- KEYS: the engines sorted set (id -> lease expiry, ms on the Redis clock), the orphaned guards hash.
-- ARGV: engine id, lease (ms), key prefix, most engines claimed per call.
-- Returns {1 if this engine's lease was still there, engines claimed, {id, announcement, ...} of the other
-- live engines, {guard id, trigger JSON, ...} of the orphaned guards}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local prefix = ARGV[3]
local claimed = 0
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))) do
  redis.call('ZREM', KEYS[1], dead)
  local key = prefix .. 'ca:' .. dead
  local raw = redis.call('GET', key)
  if raw then
    local ok, announcement = pcall(cjson.decode, raw)
    if ok and type(announcement) == 'table' and type(announcement.triggers) == 'table' then
      for id, entry in pairs(announcement.triggers) do
        if type(entry) == 'table' and entry[1] == 'stream:join' then
          redis.call('HSET', KEYS[2], id, entry[2])
        end
      end
    end
  end
  redis.call('DEL', key)
  claimed = claimed + 1
end
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
