-- Shared by the scripts that write dead letters (prepended; see scripts.rs). The dead letters
-- of both modes are one capped stream, entries `id d a o err t`, capped twice, exactly (they are
-- few, so exact trimming is cheap): at most `cap` entries, none older than `cutoff` (unix ms).

local function hf_dead(key, id, payload, attempts, options, err, now, cap, cutoff)
  redis.call('XADD', key, 'MAXLEN', cap, '*',
    'id', id, 'd', payload, 'a', attempts, 'o', options, 'err', err, 't', now)
  -- entry ids are their insertion time, so MINID drops the old ones
  redis.call('XTRIM', key, 'MINID', cutoff)
end

-- The one wording of why a job that kept crashing its workers went dead.
local function hf_too_many(deliveries, max)
  return 'delivered ' .. deliveries .. ' times without finishing (maxDeliveries ' .. max .. ')'
end
