-- Moves due jobs from the `delayed` zset to where workers fetch them, in one step per bounded
-- batch (millions of delayed jobs never stall Redis). Each member is removed before it is
-- added, so when several workers' schedulers race, every due job is moved exactly once.
-- Both modes: lib/envelope.lua and the mode's lib/push_<mode>.lua are prepended (hf_push_due).
-- KEYS[1] delayed (zset: envelope -> due, unix ms)
-- KEYS[2] where workers fetch: stream (stream mode) or wait (list mode)
-- ARGV[1] now, unix ms
-- ARGV[2] the most to move
-- returns { moved, due of the next delayed job (unix ms) or -1 when none }
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
for _, el in ipairs(due) do
  if redis.call('ZREM', KEYS[1], el) == 1 then
    hf_push_due(KEYS[2], el)
    moved = moved + 1
  end
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return { moved, next[2] and tonumber(next[2]) or -1 }
