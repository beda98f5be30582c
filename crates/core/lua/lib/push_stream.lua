-- Stream mode's way to put a job where workers fetch it (prepended after lib/envelope.lua and
-- lib/stream.lua to the scripts shared by both modes: add, promote, dead_retry; see scripts.rs).

-- A job added or retried: appended to the stream. Returns the entry id.
local function hf_push(key, id, attempt, options, payload)
  return hf_xadd(key, payload, id, attempt, options)
end

-- A delayed job whose time has come (an envelope from the `delayed` zset).
local function hf_push_due(key, el)
  local id, payload, attempt, _, options = hf_read(el)
  hf_xadd(key, payload, id, attempt, options)
end
