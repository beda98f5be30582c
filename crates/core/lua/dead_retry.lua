-- Moves dead letters back to the queue as fresh jobs (attempt 1; id and options kept). In stream
-- mode the dead letters are one consumer group's, and so are the jobs they go back as (marked
-- for that group: the other groups reading the stream skip them).
-- Both modes: lib/envelope.lua, lib/stream.lua and the mode's lib/push_<mode>.lua are
-- prepended (hf_fields, hf_push).
-- KEYS[1] dead (stream)
-- KEYS[2] where workers fetch: stream (stream mode) or wait (list mode)
-- ARGV[1] the consumer group (stream mode), '' in list mode
-- ARGV[2] 'all', or 'ids' followed by the job ids to retry
-- returns how many were moved
local wanted = nil
if ARGV[2] == 'ids' then
  wanted = {}
  for i = 3, #ARGV do wanted[ARGV[i]] = true end
end
local moved = 0
for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  local f = hf_fields(e[2])
  local id = f.id
  if id and (wanted == nil or wanted[id]) then
    hf_push(KEYS[2], id, 1, hf_for_group(f.o or '', ARGV[1]), f.d or '')
    redis.call('XDEL', KEYS[1], e[1])
    moved = moved + 1
  end
end
return moved
