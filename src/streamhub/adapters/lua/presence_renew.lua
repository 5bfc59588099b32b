-- Renew this engine's presence lease (lease.lua), then remove the members of the engines it claimed, with leaves.
-- The whole claim is one atomic step, so exactly one surviving engine removes a dead engine's members.
-- KEYS: the engines sorted set (id -> lease expiry, ms on the Redis clock).
-- ARGV: engine id, lease (ms), key prefix, most engines claimed per call.
-- Returns {1 if this engine's lease was still there (else its members must be announced again), members removed}.

local known, dead = lease_renew(KEYS[1], ARGV[1], ARGV[2], ARGV[4])
local prefix = ARGV[3]
local removed = 0
for _, engine in ipairs(dead) do
  local list = prefix .. 'pe:' .. engine
  for _, field in ipairs(redis.call('HKEYS', list)) do
    local connection, suffix = presence_split(field)
    local members, seqkey, channel = presence_keys(prefix, suffix)
    removed = removed + presence_remove(members, seqkey, channel, connection, false)
  end
  redis.call('DEL', list)
end
return {known and 1 or 0, removed}
