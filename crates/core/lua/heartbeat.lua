-- Registers or renews a worker, names the workers whose deadline passed, and tells the worker
-- what decides how soon it must look again (an idle worker beats rarely: runtime/maintenance.rs).
-- Deadlines are in the Redis server's time (TIME), so leases of a few seconds do not depend on
-- the workers' machines agreeing about the time (lib/time.lua is prepended).
-- KEYS[1] workers (zset: worker id -> heartbeat deadline, server unix ms)
-- KEYS[2] meta (hash): `paused` is read; `mode` is set to ARGV[4], for tools that find an idle
--         queue
-- KEYS[3] stream mode only: the stream, whose group's pending entries are counted
-- ARGV[1] worker id (this worker)
-- ARGV[2] lease ms: this worker counts as dead once it has been silent that long
-- ARGV[3] the worker's mode, stream or list ('': this worker recorded it already)
-- ARGV[4] stream mode only: the consumer group
-- (At most 10 arguments in all: Redis refuses a longer command before AUTH with a protocol
-- error, and a worker's first command must fail as a refused login.)
-- returns { server time (unix ms), paused (1/0), the earliest deadline of another worker that
--         has not passed (-1: none seen), entries pending in the group (-1: list mode),
--         overdue worker id, ... (at most 100; the next heartbeat names the rest) } (never
--         this worker: its deadline was just moved)
local now = hf_server_ms()
local deadline = now + tonumber(ARGV[2])
-- ZADD is refused at maxmemory (noeviction) unless the script has written already: then the
-- ZREM, which frees, lets a worker register on a full Redis so it can drain it.
local added = redis.pcall('ZADD', KEYS[1], deadline, ARGV[1])
if type(added) == 'table' and added.err then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[1], deadline, ARGV[1])
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[2], 'mode', ARGV[3])
end
local paused = redis.call('HGET', KEYS[2], 'paused') and 1 or 0
local pending = -1
if KEYS[3] then
  -- no group yet (a new or restarted Redis): nothing is pending
  local summary = redis.pcall('XPENDING', KEYS[3], ARGV[4])
  pending = (type(summary) == 'table' and not summary.err) and tonumber(summary[1]) or 0
end
local low = redis.call('ZRANGE', KEYS[1], 0, 101, 'WITHSCORES')
local overdue, next = {}, -1
for i = 1, #low, 2 do
  local id, at = low[i], tonumber(low[i + 1])
  if id ~= ARGV[1] then
    if at < now then
      overdue[#overdue + 1] = id
    elseif next < 0 then
      next = at
    end
  end
end
local reply = { now, paused, next, pending }
for _, id in ipairs(overdue) do reply[#reply + 1] = id end
return reply
