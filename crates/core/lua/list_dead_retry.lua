-- Moves dead letters back to the wait list as fresh jobs (attempt 1; id and options kept).
-- (lib/envelope.lua is prepended.)
-- KEYS[1] dead (list of JSON records)
-- KEYS[2] wait (list)
-- ARGV[1] 'all', or 'ids' followed by the job ids to retry
-- returns how many were moved
local wanted = nil
if ARGV[1] == 'ids' then
  wanted = {}
  for i = 2, #ARGV do wanted[ARGV[i]] = true end
end
local moved = 0
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local ok, rec = pcall(cjson.decode, raw)
  if ok and type(rec) == 'table' and type(rec.id) == 'string' and (wanted == nil or wanted[rec.id]) then
    redis.call('LPUSH', KEYS[2], hf_encode(rec.id, 1, 0, type(rec.o) == 'string' and rec.o or '', tostring(rec.d or '')))
    redis.call('LREM', KEYS[1], 1, raw)
    moved = moved + 1
  end
end
return moved
