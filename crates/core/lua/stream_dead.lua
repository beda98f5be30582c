-- Moves a job to the capped dead-letter stream with the reason it failed, and acknowledges its
-- delivery, in one step.
-- KEYS[1] stream
-- KEYS[2] dead (stream)
-- KEYS[3] outcomes (stream; see lib/dead.lua)
-- ARGV[1] consumer group
-- ARGV[2] entry id
-- ARGV[3] job id
-- ARGV[4] attempts made
-- ARGV[5] reason (error message)
-- ARGV[6] now, unix ms
-- ARGV[7] dead-letter cap
-- ARGV[8] dead-letter cutoff, unix ms: older dead letters are dropped
-- ARGV[9] outcome key prefix (`...:outcome:`)
-- returns 1 when moved, 0 when the entry was no longer pending (nothing is written)
-- (lib/stream.lua and lib/dead.lua are prepended)
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])[1]
local e = entry and hf_entry(entry[2]) or {}
local data, options = e.d or '', e.o or ''
hf_dead(KEYS[2], ARGV[3], data, ARGV[4], options, ARGV[5], ARGV[6], ARGV[7], ARGV[8],
  { key = KEYS[3], prefix = ARGV[9] })
return 1
