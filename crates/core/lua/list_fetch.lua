-- Moves up to N jobs from the wait list to this worker's processing list, atomically, so a job
-- is always in exactly one of the two lists (LMPOP would pop without a destination).
-- KEYS[1] wait (list; producers LPUSH, workers take from the right)
-- KEYS[2] active:<worker id> (list)
-- ARGV[1] N, the most to move
-- returns the moved elements, oldest first (empty when the wait list is empty)
local moved = {}
for i = 1, tonumber(ARGV[1]) do
  local el = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not el then break end
  moved[i] = el
end
return moved
