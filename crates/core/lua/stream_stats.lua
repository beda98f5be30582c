-- Counts of one queue, read in one step. lib/time.lua is prepended (hf_server_ms).
-- KEYS[1] stream
-- KEYS[2] delayed (zset)
-- KEYS[3] dead (stream)
-- KEYS[4] workers (zset: worker id -> heartbeat deadline, unix ms)
-- KEYS[5] meta (hash; fields `paused`, `completed`, `failed`)
-- ARGV[1] consumer group
-- ARGV[2] now, unix ms: workers whose heartbeat deadline is later count as alive
-- ARGV[3] the most entries to count one by one for this group's `waiting` when Redis does not
--         know its lag and other groups share the stream
-- returns { waiting, active, delayed, dead, workers, paused (1/0), age of the next entry to be
-- delivered in ms by the server's clock (-1: none), completed, failed,
-- { for every consumer group on the stream: name, consumers, active (pending), waiting (its lag;
-- -1 when Redis cannot tell: before 7.0, or entries deleted out of order), age of its next
-- entry in ms (-1: none), ... } }; waiting, active and the age are this queue's group's
-- (waiting always a count: where Redis does not know the lag, counted or estimated).
-- A key of the wrong type raises WRONGTYPE, which the caller maps to its error code.
local now = hf_server_ms()
local function age_after(last)
  local next = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', 1)[1]
  local ms = next and tonumber(string.match(next[1], '^(%d+)-'))
  return ms and math.max(now - ms, 0) or -1
end

local waiting, active, oldest, groups = 0, 0, -1, {}
if redis.call('EXISTS', KEYS[1]) == 1 then
  local len = redis.call('XLEN', KEYS[1])
  local found = false
  local all = redis.call('XINFO', 'GROUPS', KEYS[1])
  for _, g in ipairs(all) do
    local name, consumers, pending, lag, last
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1]
      elseif g[i] == 'consumers' then consumers = g[i + 1]
      elseif g[i] == 'pending' then pending = g[i + 1]
      elseif g[i] == 'lag' then lag = g[i + 1]
      elseif g[i] == 'last-delivered-id' then last = g[i + 1] end
    end
    local age = -1
    if type(lag) ~= 'number' or lag > 0 then age = age_after(last) end
    if type(lag) ~= 'number' then lag = -1 end
    if name == ARGV[1] then
      found = true
      active = pending
      oldest = age
      if lag >= 0 then waiting = lag
      elseif age == -1 then waiting = 0 -- nothing after its last-delivered entry
      elseif #all == 1 then waiting = math.max(len - pending, 0) -- exact unless entries were deleted
      else
        -- other groups hold entries this one has finished: count what follows its position,
        -- up to a cap (this is Redis 6.2, or entries deleted from the middle)
        waiting = #redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', ARGV[3])
      end
      if waiting == 0 then oldest = -1 end
    end
    for _, v in ipairs({ name, consumers, pending, lag, age }) do groups[#groups + 1] = v end
  end
  if not found then
    waiting = len
    if len > 0 then oldest = age_after('0-0') end
  end
end
local delayed = redis.call('ZCARD', KEYS[2])
local dead = redis.call('EXISTS', KEYS[3]) == 1 and redis.call('XLEN', KEYS[3]) or 0
local workers = redis.call('ZCOUNT', KEYS[4], ARGV[2], '+inf')
local paused = redis.call('HEXISTS', KEYS[5], 'paused')
local totals = redis.call('HMGET', KEYS[5], 'completed', 'failed')
return { waiting, active, delayed, dead, workers, paused, oldest,
  tonumber(totals[1]) or 0, tonumber(totals[2]) or 0, groups }
