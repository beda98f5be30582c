-- Registers or renews a worker, and names the workers whose deadline passed. Deadlines are in
-- the Redis server's time (TIME), so leases of a few seconds do not depend on the workers'
-- machines agreeing about the time (lib/time.lua is prepended).
-- KEYS[1] workers (zset: worker id -> heartbeat deadline, server unix ms)
-- KEYS[2] meta (hash): its `mode` field is set to ARGV[4], for tools that find an idle queue
-- ARGV[1] worker id (this worker)
-- ARGV[2] lease ms: this worker counts as dead once it has been silent that long
-- ARGV[3] most overdue workers to name
-- ARGV[4] the worker's mode: stream or list
-- returns { server time (unix ms), overdue worker id, ... } (never this worker: its deadline
--         was just moved)
local now = hf_server_ms()
-- ZADD is refused at maxmemory (noeviction) unless the script has written already: the ZREM,
-- which frees, lets a worker register on a full Redis so it can drain it.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], 'mode', ARGV[4])
local overdue = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[3]))
table.insert(overdue, 1, now)
return overdue
