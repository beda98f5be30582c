-- Reads a page of dead letters, newest first, decoded from their JSON records.
-- KEYS[1] dead (list of JSON records)
-- ARGV[1] offset
-- ARGV[2] limit
-- returns { id, payload, attempts, error, failed at (unix ms), ... } flattened, 5 per record
local out = {}
local first = tonumber(ARGV[1])
for _, raw in ipairs(redis.call('LRANGE', KEYS[1], first, first + tonumber(ARGV[2]) - 1)) do
  local ok, rec = pcall(cjson.decode, raw)
  if ok and type(rec) == 'table' then
    out[#out + 1] = tostring(rec.id or '')
    out[#out + 1] = tostring(rec.d or '')
    out[#out + 1] = tonumber(rec.a) or 0
    out[#out + 1] = tostring(rec.err or '')
    out[#out + 1] = tonumber(rec.t) or 0
  end
end
return out
