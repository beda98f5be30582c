-- Adds a batch of jobs that need more than a plain push: a jobId to deduplicate, or a start
-- time. One step for the whole batch, so concurrent producers cannot both add one jobId.
-- (lib/envelope.lua and lib/stream.lua are prepended.)
-- KEYS[1] stream (stream mode) or wait (list mode)
-- KEYS[2] delayed (zset: envelope -> due, unix ms)
-- KEYS[3..] dedup:<jobId>, one per job that has a jobId, in job order
-- ARGV[1] mode: 'stream' or 'list'
-- ARGV[2] now, unix ms
-- ARGV[3] dedup window, ms
-- then 5 per job: has a dedup key (1/0), due (unix ms; 0: now), id ('' in stream mode without
-- jobId: the entry id becomes the id), options, payload
-- returns per job: 1 added now, 2 added to `delayed`, 0 a duplicate (nothing added); and in
-- stream mode the entry id of each job added now (else '')
local stream = ARGV[1] == 'stream'
local now, window = tonumber(ARGV[2]), ARGV[3]
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
    redis.call('ZADD', KEYS[2], due, hf_encode(id, 1, 0, options, payload))
    outcome[#outcome + 1] = 2
  elseif stream then
    entry = hf_xadd(KEYS[1], payload, id, 1, options)
    outcome[#outcome + 1] = 1
  else
    redis.call('LPUSH', KEYS[1], hf_encode(id, 1, 0, options, payload))
    outcome[#outcome + 1] = 1
  end
  entries[#entries + 1] = entry
end
return { outcome, entries }
