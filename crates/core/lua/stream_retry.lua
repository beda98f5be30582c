-- Schedules the next attempt of a failed job and acknowledges the failed delivery, in one step:
-- a crash between the two cannot lose or double it. With a backoff delay the job waits in the
-- `delayed` zset (as an envelope); without one it is re-added at once. Either way it is marked
-- as this group's, so the other groups reading the stream skip it. (lib/envelope.lua,
-- lib/stream.lua and lib/delay.lua are prepended.)
-- KEYS[1] stream
-- KEYS[2] delayed (zset: envelope -> due, unix ms)
-- ARGV[1] consumer group
-- ARGV[2] entry id of the failed delivery
-- ARGV[3] job id (kept across attempts)
-- ARGV[4] next attempt number (1-based)
-- ARGV[5] due, unix ms (0: now)
-- ARGV[6] the queue's events channel (lib/delay.lua)
-- returns 1, or 0 when the entry was no longer pending (another worker recovered it and already
--         finished it), in which case nothing is added
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])[1]
if entry == nil then return 0 end
local e = hf_entry(entry[2])
local data, options = e.d or '', hf_for_group(e.o or '', ARGV[1])
if tonumber(ARGV[5]) > 0 then
  hf_delay(KEYS[2], ARGV[5], hf_encode(ARGV[3], ARGV[4], 0, options, data), ARGV[6])
else
  hf_xadd(KEYS[1], data, ARGV[3], ARGV[4], options)
end
return 1
