-- Prelude: add a member to a sorted set ranked by arrival (score = last score + 1), so ZRANGE lists in first-add order.
-- Returns the member's rank: 0 when the set was empty.

local function append_ranked(key, member)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  local rank = 0
  if last[2] then
    rank = tonumber(last[2]) + 1
  end
  redis.call('ZADD', key, rank, member)
  return rank
end

