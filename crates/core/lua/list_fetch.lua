-- Moves up to N jobs from the wait list to this worker's processing list, atomically, so a job
-- is always in exactly one of the two lists (LMPOP would pop without a destination).
-- One LRANGE, LTRIM and LPUSH for the whole batch: the same result as N x LMOVE RIGHT LEFT,
-- at a fraction of the Redis time (each redis.call from Lua costs about a microsecond).
-- KEYS[1] wait (list; producers LPUSH, workers take from the right)
-- KEYS[2] active:<worker id> (list)
-- ARGV[1] N, the most to move
-- returns the moved elements, oldest first (empty when the wait list is empty)
local n = tonumber(ARGV[1])
local newest_first = redis.call('LRANGE', KEYS[1], -n, -1)
local k = #newest_first
if k == 0 then return newest_first end
redis.call('LTRIM', KEYS[1], 0, -k - 1)
-- active gets them oldest first, as N x LMOVE would: its head ends up the newest moved
local moved = {}
for i = 1, k do moved[i] = newest_first[k + 1 - i] end
for from = 1, k, 1000 do -- unpack() is bounded by Lua's stack
  redis.call('LPUSH', KEYS[2], unpack(moved, from, math.min(from + 999, k)))
end
return moved
