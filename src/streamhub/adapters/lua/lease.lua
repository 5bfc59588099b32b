-- Prelude of the engine lease scripts (presence_renew.lua, cluster_renew.lua): one mechanism for every lease.
-- A lease is a member of a sorted set, engine id -> expiry in ms on the Redis clock (engines' clocks do not
-- matter). Renewing takes the lease for ``lease_ms`` more and claims (removes from the set) at most ``most``
-- engines whose lease ran out; the caller cleans up after each claimed engine in the same script, so exactly
-- one surviving engine claims a dead one. Returns whether this engine's lease was still there, the claimed ids,
-- and the Redis time used.

local function lease_renew(engines, id, lease_ms, most)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local known = redis.call('ZSCORE', engines, id)
  redis.call('ZADD', engines, now + tonumber(lease_ms), id)
  local dead = redis.call('ZRANGEBYSCORE', engines, '-inf', now, 'LIMIT', 0, tonumber(most))
  for _, claimed in ipairs(dead) do
    redis.call('ZREM', engines, claimed)
  end
  return known, dead, now
end
