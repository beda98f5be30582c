-- Returns orphans — elements in this worker's processing list that the worker does not hold
-- (a fetch whose reply was lost with the connection) — to the consuming end of the wait list.
-- They never ran, so no recovery is counted.
-- KEYS[1] active:<worker id> (list)
-- KEYS[2] wait (list)
-- ARGV    the orphaned elements
-- returns how many were returned (an element already gone is skipped)
local n = 0
for i = 1, #ARGV do
  if redis.call('LREM', KEYS[1], -1, ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[i])
    n = n + 1
  end
end
return n
