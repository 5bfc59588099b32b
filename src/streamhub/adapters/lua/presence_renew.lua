-- Renew this engine's lease, then claim engines whose lease ran out: remove their members with leaves.
-- The whole claim is one atomic step, so exactly one surviving engine removes a dead engine's members.
-- KEYS: the engines sorted set (id -> lease expiry, ms on the Redis clock).
-- ARGV: engine id, lease (ms), key prefix, most engines claimed per call.
-- Returns {1 if this engine's lease was still there (else its members must be announced again), members removed}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local prefix = ARGV[3]
local removed = 0
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))) do
  redis.call('ZREM', KEYS[1], dead)
  local list = prefix .. 'pe:' .. dead
  for _, field in ipairs(redis.call('HKEYS', list)) do
    local connection, suffix = presence_split(field)
    local members, seqkey, channel = presence_keys(prefix, suffix)
    removed = removed + presence_remove(members, seqkey, channel, connection, false)
  end
  redis.call('DEL', list)
end
return {known and 1 or 0, removed}
