-- Shared by the scripts that read or write envelopes (prepended to them when they are loaded;
-- see scripts.rs). Must agree byte for byte with crates/core/src/envelope.rs.
-- Envelope: "\31hf1|<attempt>|<recoveries>|<options>|<id length>|<id><payload>"; the payload is
-- any bytes.

-- Returns id, payload, attempt (string), recoveries (number), options (string); or nil when
-- `el` is not an envelope (raw data from another producer).
local function hf_parse(el)
  local _, stop, attempt, recoveries, options, idLen = string.find(el, '^\31hf1|(%d+)|(%d+)|([^|]*)|(%d+)|')
  if not stop or #attempt > 10 or #recoveries > 10 or #idLen > 10 then return nil end
  if tonumber(attempt) > 4294967295 or tonumber(recoveries) > 4294967295 then return nil end
  local n = tonumber(idLen)
  if n > 4294967295 or #el - stop < n then return nil end
  return string.sub(el, stop + 1, stop + n), string.sub(el, stop + n + 1), attempt, tonumber(recoveries), options
end

-- Like hf_parse, but raw data reads as attempt 1 with a content-derived id.
local function hf_read(el)
  local id, payload, attempt, recoveries, options = hf_parse(el)
  if id then return id, payload, attempt, recoveries, options end
  return 'raw-' .. string.sub(redis.sha1hex(el), 1, 16), el, '1', 0, ''
end

local function hf_encode(id, attempt, recoveries, options, payload)
  return '\31hf1|' .. attempt .. '|' .. recoveries .. '|' .. options .. '|' .. #id .. '|' .. id .. payload
end
