-- Redis Cluster: renew this engine's presence lease (lease.lua) and claim dead engines, all in the ``{engines}``
-- slot. A claim moves the dead engine's member list to its sweep list (``pz:<id>``, merged if one is pending) and
-- schedules it in the sweeps sorted set (dead id -> when a sweeper may take it, ms on the Redis clock). The claim
-- is atomic (one claimer); the members are then removed group by group by the caller (other slots), and the sweep
-- list is kept until ``presence_swept.lua`` confirms them: a sweep whose taker died is taken again once due.
-- KEYS: the engines sorted set, the sweeps sorted set.
-- ARGV: engine id, lease (ms), engines prefix, most engines claimed (and sweeps taken) per call.
-- Returns {1 if this engine's lease was still there, {dead id, {list fields}, ...} of the sweeps it took}.

local known, dead, now = lease_renew(KEYS[1], ARGV[1], ARGV[2], ARGV[4])
local prefix = ARGV[3]
for _, engine in ipairs(dead) do
  local list, sweep = prefix .. 'pe:' .. engine, prefix .. 'pz:' .. engine
  if redis.call('EXISTS', list) == 1 then
    if redis.call('EXISTS', sweep) == 1 then
      for _, field in ipairs(redis.call('HKEYS', list)) do
        redis.call('HSET', sweep, field, '1')
      end
      redis.call('DEL', list)
    else
      redis.call('RENAME', list, sweep)
    end
    redis.call('ZADD', KEYS[2], 0, engine)
  end
end
local taken = {}
for _, engine in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))) do
  local fields = redis.call('HKEYS', prefix .. 'pz:' .. engine)
  if #fields == 0 then
    redis.call('ZREM', KEYS[2], engine)
  else
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), engine)  -- taken: due again only if this taker dies
    table.insert(taken, engine)
    table.insert(taken, fields)
  end
end
return {known and 1 or 0, taken}
