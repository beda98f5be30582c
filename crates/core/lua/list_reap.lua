-- Returns a dead worker's whole processing list to the wait list and forgets the worker, once:
-- the first reaper to run this for a worker does the work, every later one finds it gone.
-- Each return counts as a recovery in the element's envelope; an element recovered more than
-- max-deliveries times goes to the dead letters instead (a poison message).
-- Elements are envelopes or raw data (lib/time.lua, lib/envelope.lua and lib/dead.lua are
-- prepended).
-- KEYS[1] workers (zset: worker id -> heartbeat deadline, server unix ms)
-- KEYS[2] active:<worker id> (list)
-- KEYS[3] wait (list)
-- KEYS[4] dead (stream, capped)
-- KEYS[5] outcomes (stream; see lib/dead.lua)
-- ARGV[1] worker id
-- ARGV[2] max deliveries
-- ARGV[3] dead-letter cap
-- ARGV[4] dead-letter cutoff, unix ms: older dead letters are dropped
-- ARGV[5] not after, server unix ms: a request that runs later is stale (Redis stalled, or it
--         waited to be read) and does nothing, since the worker may be alive and not yet renewed
-- ARGV[6] outcome key prefix (`...:outcome:`)
-- returns false when the worker is alive or already reaped, else
--         { {requeued job id, ...}, {dead job id, reason, ...} }
-- the worker is dead if its deadline (heartbeat.lua, server time) is past
local now = hf_server_ms()
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
if now > tonumber(ARGV[5]) or not deadline or tonumber(deadline) >= now then return false end

local max = tonumber(ARGV[2])
local requeued, dead = {}, {}
while true do
  -- newest first, each pushed onto the consuming end: the oldest ends up next in line
  local el = redis.call('LPOP', KEYS[2])
  if not el then break end
  local id, payload, attempt, recoveries, options = hf_read(el)
  recoveries = recoveries + 1
  if recoveries > max then
    local reason = hf_too_many(recoveries, max)
    hf_dead(KEYS[4], id, payload, attempt, options, reason, now, ARGV[3], ARGV[4],
      { key = KEYS[5], prefix = ARGV[6] })
    dead[#dead + 1] = id
    dead[#dead + 1] = reason
  else
    -- back to the consuming end: it has waited longest
    redis.call('RPUSH', KEYS[3], hf_encode(id, attempt, recoveries, options, payload))
    requeued[#requeued + 1] = id
  end
end
redis.call('ZREM', KEYS[1], ARGV[1])
return { requeued, dead }
