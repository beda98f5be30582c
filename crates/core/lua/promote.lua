-- Moves due jobs from the `delayed` zset to where workers fetch them, in one step per bounded
-- batch (millions of delayed jobs never stall Redis). Each member is removed before it is
-- added, so when several workers' schedulers race, every due job is moved exactly once.
-- (lib/envelope.lua and lib/stream.lua are prepended.)
-- KEYS[1] delayed (zset: envelope -> due, unix ms)
-- KEYS[2] stream (stream mode) or wait (list mode)
-- ARGV[1] mode: 'stream' or 'list'
-- ARGV[2] now, unix ms
-- ARGV[3] the most to move
-- returns { moved, due of the next delayed job (unix ms) or -1 when none }
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local moved = 0
for _, el in ipairs(due) do
  if redis.call('ZREM', KEYS[1], el) == 1 then
    if ARGV[1] == 'stream' then
      local id, payload, attempt, _, options = hf_read(el)
      hf_xadd(KEYS[2], payload, id, attempt, options)
    else
      -- onto the consuming end: its time has come
      redis.call('RPUSH', KEYS[2], el)
    end
    moved = moved + 1
  end
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return { moved, next[2] and tonumber(next[2]) or -1 }
