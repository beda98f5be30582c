-- Shared by the scripts that delay a job (prepended; see scripts.rs). Idle schedulers sleep until
-- the earliest due time they know of; a job due sooner than that wakes them through the queue's
-- channel (src/signals.rs). pcall: a user whose ACL grants no channel still adds the job, and
-- schedulers that cannot subscribe poll instead.

local function hf_delay(delayed, due, member, channel)
  local first = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
  redis.call('ZADD', delayed, due, member)
  if first[2] == nil or tonumber(due) < tonumber(first[2]) then
    redis.pcall('PUBLISH', channel, 'd')
  end
end
