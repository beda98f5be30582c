-- Shared by the scripts that write dead letters (prepended; see scripts.rs). The dead letters
-- of both modes are one capped stream, entries `id d a o err t`, capped twice, exactly (they are
-- few, so exact trimming is cheap): at most `cap` entries, none older than `cutoff` (unix ms).
-- A job that keeps its outcome (option `k<ms>`) also gets it recorded for `waitFor`:
-- `outcome:<id>` = 'd' .. error for that long, and its id added to the `outcomes` stream.
-- `out` is { key = the outcomes stream, prefix = the outcome key prefix `...:outcome:` }.

-- Records a finished job's outcome (`record`: 'c' .. result or 'd' .. error) when its options
-- ask for it. Runtime/acker.rs writes completed ones the same way (Common::record_outcomes).
local function hf_outcome(out, id, options, record)
  local keep = string.match(';' .. options .. ';', ';k(%d+);')
  if not keep then return end
  redis.call('SET', out.prefix .. id, record, 'PX', keep)
  redis.call('XADD', out.key, 'MAXLEN', '~', 1000, '*', 'id', id)
end

local function hf_dead(key, id, payload, attempts, options, err, now, cap, cutoff, out)
  redis.call('XADD', key, 'MAXLEN', cap, '*',
    'id', id, 'd', payload, 'a', attempts, 'o', options, 'err', err, 't', now)
  -- entry ids are their insertion time, so MINID drops the old ones
  redis.call('XTRIM', key, 'MINID', cutoff)
  hf_outcome(out, id, options, 'd' .. err)
end

-- The one wording of why a job that kept crashing its workers went dead.
local function hf_too_many(deliveries, max)
  return 'delivered ' .. deliveries .. ' times without finishing (maxDeliveries ' .. max .. ')'
end
