-- Moves due jobs from the `delayed` zset to where workers fetch them, in one step per bounded
-- batch (millions of delayed jobs never stall Redis). Each member is removed before it is
-- added, so even schedulers that race (tools, or a lease changing hands) move every due job
-- exactly once.
-- One worker per queue schedules at a time: the lease names it, and stays its own while its
-- heartbeat deadline in `workers` has not passed (server time, lib/time.lua), so it needs no
-- renewal of its own. The other workers' schedulers call only to see whether it is still held.
-- Both modes: lib/time.lua, lib/envelope.lua and the mode's lib/push_<mode>.lua are prepended
-- (hf_push_due).
-- KEYS[1] delayed (zset: envelope -> due, unix ms)
-- KEYS[2] where workers fetch: stream (stream mode) or wait (list mode)
-- KEYS[3] scheduler (string: the id of the worker holding the lease)
-- KEYS[4] workers (zset: worker id -> heartbeat deadline, server unix ms)
-- ARGV[1] now, unix ms
-- ARGV[2] the most to move
-- ARGV[3] the calling worker's id ('': move without the lease, as tools do)
-- returns { moved, due of the next delayed job (unix ms) or -1 when none,
--           ms until the holder's heartbeat deadline when another live worker holds the
--           lease (nothing was moved) or 0 }
local function next_due()
  local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return next[2] and tonumber(next[2]) or -1
end

local me = ARGV[3]
if me ~= '' then
  local holder = redis.call('GET', KEYS[3])
  if holder ~= me then
    local deadline = holder and redis.call('ZSCORE', KEYS[4], holder)
    local left = deadline and (tonumber(deadline) - hf_server_ms()) or 0
    if left > 0 then
      return { 0, next_due(), left }
    end
    -- pcall: refused on a full Redis (noeviction) before the script wrote; it moves anyway
    redis.pcall('SET', KEYS[3], me)
  end
end

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
for _, el in ipairs(due) do
  if redis.call('ZREM', KEYS[1], el) == 1 then
    hf_push_due(KEYS[2], el)
    moved = moved + 1
  end
end
return { moved, next_due(), 0 }
