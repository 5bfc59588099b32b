-- Prelude of every script that changes a group: number the change, log it and publish it, all inside the
-- calling script's atomic step, so a stored change, its offset and its event can never disagree.
-- position: HASH {epoch, offset}; log: LIST of event JSON; head: the event JSON without its closing brace;
-- epoch: used only if the group has none yet; size/age_ms: change log bounds.
-- On a Redis Cluster the adapter swaps PUBLISH for SPUBLISH (sharded pub/sub: the channel shares the group's slot).

local function record(position, log, channel, head, epoch, size, age_ms)
  redis.call('HSETNX', position, 'epoch', epoch)
  local offset = redis.call('HINCRBY', position, 'offset', 1)
  local event = head .. ',"offset":' .. offset .. '}'
  if tonumber(size) > 0 then
    if redis.call('RPUSH', log, event) > tonumber(size) then
      redis.call('LTRIM', log, -tonumber(size), -1)
    end
    redis.call('PEXPIRE', log, age_ms)
  end
  redis.call('PUBLISH', channel, event)
  return offset
end

