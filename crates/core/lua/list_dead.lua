-- Moves a job that used up its attempts to the capped dead letters, and takes it off this
-- worker's processing list, in one step.
-- KEYS[1] active:<worker id> (list)
-- KEYS[2] dead (stream)
-- KEYS[3] outcomes (stream; see lib/dead.lua)
-- ARGV[1] the element as delivered
-- ARGV[2] job id
-- ARGV[3] payload
-- ARGV[4] attempts made
-- ARGV[5] reason (error message)
-- ARGV[6] now, unix ms
-- ARGV[7] dead-letter cap
-- ARGV[8] dead-letter cutoff, unix ms: older dead letters are dropped
-- ARGV[9] job options (kept, so a retry from dead keeps them)
-- ARGV[10] outcome key prefix (`...:outcome:`)
-- returns 1 when moved, 0 when the delivery was no longer in the processing list
-- (lib/dead.lua is prepended)
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
hf_dead(KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[9], ARGV[5], ARGV[6], ARGV[7], ARGV[8],
  { key = KEYS[3], prefix = ARGV[10] })
return 1
