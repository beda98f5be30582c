-- Claims entries whose lease expired (their worker died or lost its connection) for this
-- consumer, and dead-letters the ones delivered more than max-deliveries times (poison messages
-- that crash every worker they reach) instead of handing them out again. An entry marked as
-- another group's retry (read, and not yet skipped, by a worker that died) is acknowledged and
-- dropped: it is not this group's job.
-- KEYS[1] stream
-- KEYS[2] dead (stream)
-- KEYS[3] outcomes (stream; see lib/dead.lua)
-- ARGV[1] consumer group
-- ARGV[2] consumer (this worker)
-- ARGV[3] min idle ms (the visibility timeout)
-- ARGV[4] scan cursor (start with 0-0)
-- ARGV[5] max entries to claim
-- ARGV[6] max deliveries
-- ARGV[7] now, unix ms
-- ARGV[8] dead-letter cap
-- ARGV[9] dead-letter cutoff, unix ms: older dead letters are dropped
-- ARGV[10] not after, server unix ms: a request that runs later is stale (Redis stalled, or it
--          waited to be read) and claims nothing, since live workers may not have renewed yet
-- ARGV[11] outcome key prefix (`...:outcome:`)
-- (lib/time.lua, lib/stream.lua and lib/dead.lua are prepended)
-- returns { next cursor, { entry id, { field, value, ... }, delivery count, ... },
--           { dead job id, reason, ... } }
if hf_server_ms() > tonumber(ARGV[10]) then
  return { ARGV[4], {}, {} }
end
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local claimed, dead = {}, {}
local max = tonumber(ARGV[6])
for _, e in ipairs(r[2]) do
  local id, fields = e[1], e[2]
  local info = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)[1]
  local deliveries = info and info[4] or 1
  if fields == false or fields == nil or hf_other_group(hf_entry(fields).o or '', ARGV[1]) then
    -- deleted from under its pending record (nothing left to run), or another group's retry
    redis.call('XACK', KEYS[1], ARGV[1], id)
  elseif deliveries > max then
    local f = hf_entry(fields)
    local job = f.id or id
    local reason = hf_too_many(deliveries, max)
    hf_dead(KEYS[2], job, f.d or '', f.a or '1', f.o or '', reason, ARGV[7], ARGV[8], ARGV[9],
      { key = KEYS[3], prefix = ARGV[11] })
    redis.call('XACK', KEYS[1], ARGV[1], id)
    dead[#dead + 1] = job
    dead[#dead + 1] = reason
  else
    claimed[#claimed + 1] = id
    claimed[#claimed + 1] = fields
    claimed[#claimed + 1] = deliveries
  end
end
return { r[1], claimed, dead }
