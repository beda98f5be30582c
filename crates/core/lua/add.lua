-- Adds a batch of jobs that need more than a plain push: a jobId to deduplicate, or a start
-- time. One step for the whole batch, so concurrent producers cannot both add one jobId.
-- Both modes: lib/envelope.lua, lib/delay.lua and the mode's lib/push_<mode>.lua are prepended
-- (hf_push).
-- KEYS[1] where workers fetch: stream (stream mode) or wait (list mode)
-- KEYS[2] delayed (zset: envelope -> due, unix ms)
-- KEYS[3..] dedup:<jobId>, one per job that has a jobId, in job order
-- ARGV[1] now, unix ms
-- ARGV[2] dedup window, ms
-- ARGV[3] the queue's events channel (lib/delay.lua)
-- then 5 per job: has a dedup key (1/0), due (unix ms; 0: now), id ('' in stream mode without
-- jobId: the entry id becomes the id), options, payload
-- returns per job: 1 added now, 2 added to `delayed`, 0 a duplicate (nothing added); and in
-- stream mode the entry id of each job added now (else '')
local now, window = tonumber(ARGV[1]), ARGV[2]
local outcome, entries = {}, {}
local k = 3
for i = 4, #ARGV, 5 do
  local dedup, due, id, options, payload = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local fresh = true
  if dedup == '1' then
    fresh = redis.call('SET', KEYS[k], '1', 'NX', 'PX', window) ~= false
    k = k + 1
  end
  local entry = ''
  if not fresh then
    outcome[#outcome + 1] = 0
  elseif due > now then
    hf_delay(KEYS[2], due, hf_encode(id, 1, 0, options, payload), ARGV[3])
    outcome[#outcome + 1] = 2
  else
    entry = hf_push(KEYS[1], id, 1, options, payload)
    outcome[#outcome + 1] = 1
  end
  entries[#entries + 1] = entry
end
return { outcome, entries }
