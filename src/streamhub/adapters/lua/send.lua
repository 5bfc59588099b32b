-- Publish a custom event (not stored) as a numbered change of its group.
-- KEYS: position hash, change log list.
-- ARGV: channel, event JSON without its closing brace, epoch candidate, log size, log age (ms).
-- Returns the event's offset.

return record(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
