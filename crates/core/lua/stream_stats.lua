-- Counts of one queue, read in one step. lib/time.lua is prepended (hf_server_ms).
-- KEYS[1] stream
-- KEYS[2] delayed (zset)
-- KEYS[3] dead (stream)
-- KEYS[4] workers (zset: worker id -> heartbeat deadline, unix ms)
-- KEYS[5] meta (hash; fields `paused`, `completed`, `failed`)
-- ARGV[1] consumer group
-- ARGV[2] now, unix ms: workers whose heartbeat deadline is later count as alive
-- returns { waiting, active, delayed, dead, workers, paused (1/0), age of the next entry to be
-- delivered in ms by the server's clock (-1: none), completed, failed }
-- A key of the wrong type raises WRONGTYPE, which the caller maps to its error code.
local waiting, active, next_from = 0, 0, '-'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local len = redis.call('XLEN', KEYS[1])
  local found = false
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local name, pending, lag, last
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1]
      elseif g[i] == 'pending' then pending = g[i + 1]
      elseif g[i] == 'lag' then lag = g[i + 1]
      elseif g[i] == 'last-delivered-id' then last = g[i + 1] end
    end
    if name == ARGV[1] then
      found = true
      active = pending
      next_from = '(' .. last
      -- lag is nil when Redis cannot tell (entries deleted out of order): fall back to an estimate
      if type(lag) == 'number' then waiting = lag else waiting = math.max(len - pending, 0) end
    end
  end
  if not found then waiting = len end
end
local oldest = -1
if waiting > 0 then
  local next = redis.call('XRANGE', KEYS[1], next_from, '+', 'COUNT', 1)[1]
  local ms = next and tonumber(string.match(next[1], '^(%d+)-'))
  if ms then oldest = math.max(hf_server_ms() - ms, 0) end
end
local delayed = redis.call('ZCARD', KEYS[2])
local dead = redis.call('EXISTS', KEYS[3]) == 1 and redis.call('XLEN', KEYS[3]) or 0
local workers = redis.call('ZCOUNT', KEYS[4], ARGV[2], '+inf')
local paused = redis.call('HEXISTS', KEYS[5], 'paused')
local totals = redis.call('HMGET', KEYS[5], 'completed', 'failed')
return { waiting, active, delayed, dead, workers, paused, oldest,
  tonumber(totals[1]) or 0, tonumber(totals[2]) or 0 }
