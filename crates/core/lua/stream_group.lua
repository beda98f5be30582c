-- Creates the consumer group, and the stream if it does not exist yet, reading from the
-- stream's first entry (jobs added before any worker ran are kept) or, if asked, from the
-- entries added after it. A group that exists is left as it is (it may be another program's).
-- A script, not a plain XGROUP CREATE, so that a worker can start on a full Redis: at maxmemory
-- (noeviction) Redis refuses a script's first write when that write can grow memory, but lets
-- a script that has written go on (it cannot undo). The XTRIM below removes nothing (no entry
-- id is below 0-1) and is that first write. Checked on Redis 6.2, 7.0 and Valkey 8.1.
-- KEYS[1] stream
-- ARGV[1] consumer group
-- ARGV[2] where a new group starts: '0' (the first entry) or '$' (entries added from now)
-- A group starting at '$' on a stream that has entries is told how many entries came before it
-- (ENTRIESREAD, Redis 7.0+: where XINFO STREAM reports entries-added), else Redis cannot tell its
-- lag once entries are added after it (fan-out: `stats().groups`).
-- returns 1 when the group was created, 0 when it existed
redis.call('XTRIM', KEYS[1], 'MINID', '0-1')
local create = { 'XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[2], 'MKSTREAM' }
if ARGV[2] == '$' and redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then
      create[#create + 1] = 'ENTRIESREAD'
      create[#create + 1] = info[i + 1]
    end
  end
end
local ok, err = pcall(redis.call, unpack(create))
if ok then return 1 end
if string.find(tostring(err.err or err), 'BUSYGROUP', 1, true) then return 0 end
return redis.error_reply(err.err or tostring(err))
