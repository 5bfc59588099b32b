-- The values of a group's items in first-creation order, read in one atomic step.
-- KEYS: items hash, order zset.

return group_values(KEYS[1], KEYS[2], {})
