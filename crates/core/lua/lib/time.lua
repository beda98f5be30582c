-- Shared by the scripts that judge leases (prepended; see scripts.rs): the Redis server's clock,
-- so deadlines do not depend on the workers' machines agreeing about the time.

local function hf_server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
