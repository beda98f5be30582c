-- Shared by the scripts that write dead letters (prepended; see scripts.rs). The dead letters
-- are capped twice, exactly (they are few, so exact trimming is cheap): at most `cap` entries,
-- none older than `cutoff` (unix ms).

local function hf_dead_stream(key, id, payload, attempts, options, err, now, cap, cutoff)
  redis.call('XADD', key, 'MAXLEN', cap, '*',
    'id', id, 'd', payload, 'a', attempts, 'o', options, 'err', err, 't', now)
  -- entry ids are their insertion time, so MINID drops the old ones
  redis.call('XTRIM', key, 'MINID', cutoff)
end

local function hf_dead_list(key, id, payload, attempts, options, err, now, cap, cutoff)
  redis.call('LPUSH', key, cjson.encode({
    id = id, d = payload, a = tonumber(attempts), o = options, err = err, t = tonumber(now),
  }))
  redis.call('LTRIM', key, 0, tonumber(cap) - 1)
  -- the oldest sit at the tail; a bounded sweep per write keeps up with the writes
  for _ = 1, 100 do
    local last = redis.call('LINDEX', key, -1)
    if not last then break end
    local ok, rec = pcall(cjson.decode, last)
    if not (ok and type(rec) == 'table' and tonumber(rec.t) and tonumber(rec.t) < tonumber(cutoff)) then break end
    redis.call('RPOP', key)
  end
end
