-- Forgets workers whose heartbeat stopped: removes them from the workers zset and deletes their
-- consumer from the group once nothing is pending for it (their entries are recovered first by
-- XAUTOCLAIM, so deleting the consumer never drops a job). lib/time.lua is prepended.
-- KEYS[1] stream
-- KEYS[2] workers (zset: worker id -> heartbeat deadline, server unix ms)
-- ARGV[1] consumer group
-- ARGV[2..] the workers a heartbeat named overdue (each checked again: it may have come back)
-- returns the number of workers removed
local now = hf_server_ms()
local stale = {}
for i = 2, #ARGV do
  local deadline = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if deadline and tonumber(deadline) < now then stale[#stale + 1] = ARGV[i] end
end
local removed = 0
local stream = redis.call('TYPE', KEYS[1]).ok == 'stream'
for _, w in ipairs(stale) do
  local busy = false
  if stream then
    local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], '-', '+', 1, w)
    busy = ok and #p > 0
    if ok and not busy then pcall(redis.call, 'XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], w) end
  end
  if not busy then
    redis.call('ZREM', KEYS[2], w)
    removed = removed + 1
  end
end
return removed
