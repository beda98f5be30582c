-- Deletes every dead letter, and says how many there were. A script rather than MULTI: Redis
-- at maxmemory refuses a whole MULTI, and purging dead letters is one way to free memory.
-- KEYS[1] dead (stream)
-- returns the number of dead letters deleted
local n = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
