-- A worker that stops gives up the scheduler lease (see promote.lua), if it holds it, and tells
-- the queue's other workers at once (`l` on the queue's channel, src/signals.rs) instead of
-- leaving them to notice its heartbeat is gone. pcall: an ACL without channels still releases.
-- KEYS[1] scheduler (string: the id of the worker holding the lease)
-- ARGV[1] the stopping worker's id
-- ARGV[2] the queue's channel
-- returns 1 when it held the lease, else 0
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.pcall('PUBLISH', ARGV[2], 'l')
return 1
