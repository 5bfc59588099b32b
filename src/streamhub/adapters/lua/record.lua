-- Prelude of every script that changes a group: number the change, log it and publish it, all inside the
-- calling script's atomic step, so a stored change, its offset and its event can never disagree.
-- position: HASH {epoch, offset}; log: LIST of event JSON; head: the event JSON without its closing brace;
-- epoch: used only if the group has none yet; size/age_ms: change log bounds.
-- On a Redis Cluster the adapter swaps PUBLISH for SPUBLISH (sharded pub/sub: the channel shares the group's slot).
-- Cost per change is Redis CPU shared by every engine (bench/RESULTS.md), so: the epoch is set only with the
-- group's first offset (a position with an offset always has its epoch: both are set here, and ``snapshot.lua``
-- sets the epoch alone); a full log is trimmed by a sixteenth of its size at once, so it holds between 15/16 of
-- ``size`` and ``size`` events and a busy group pays LTRIM once every size/16 changes, not on every change.

local function record(position, log, channel, head, epoch, size, age_ms)
  local offset = redis.call('HINCRBY', position, 'offset', 1)
  if offset == 1 then
    redis.call('HSETNX', position, 'epoch', epoch)
  end
  local event = head .. ',"offset":' .. offset .. '}'
  local limit = tonumber(size)
  if limit > 0 then
    if redis.call('RPUSH', log, event) > limit then
      redis.call('LTRIM', log, math.floor(limit / 16) - limit, -1)
    end
    redis.call('PEXPIRE', log, age_ms)
  end
  redis.call('PUBLISH', channel, event)
  return offset
end

