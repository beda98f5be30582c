-- Schedules the next attempt of a failed job and takes the failed delivery off this worker's
-- processing list, in one step. With a backoff delay the job waits in the `delayed` zset;
-- without one it goes back on the wait list at once. (lib/delay.lua is prepended.)
-- KEYS[1] active:<worker id> (list)
-- KEYS[2] wait (list)
-- KEYS[3] delayed (zset: envelope -> due, unix ms)
-- ARGV[1] the element as delivered
-- ARGV[2] the element for the next attempt
-- ARGV[3] due, unix ms (0: now)
-- ARGV[4] the queue's events channel (lib/delay.lua)
-- returns 1, or 0 when the delivery was no longer in the processing list (nothing is added)
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end
if tonumber(ARGV[3]) > 0 then
  hf_delay(KEYS[3], ARGV[3], ARGV[2], ARGV[4])
else
  redis.call('LPUSH', KEYS[2], ARGV[2])
end
return 1
