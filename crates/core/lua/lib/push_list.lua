-- List mode's way to put a job where workers fetch it (prepended after lib/envelope.lua to the
-- scripts shared by both modes: add, promote, dead_retry; see scripts.rs).

-- A job added or retried: an envelope at the producing end of the wait list. Returns '' (list
-- elements have no entry id).
local function hf_push(key, id, attempt, options, payload)
  redis.call('LPUSH', key, hf_encode(id, attempt, 0, options, payload))
  return ''
end

-- A delayed job whose time has come: onto the consuming end, as it is.
local function hf_push_due(key, el)
  redis.call('RPUSH', key, el)
end
