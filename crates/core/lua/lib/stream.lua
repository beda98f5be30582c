-- Shared by the scripts that read or write stream entries (prepended; see scripts.rs).
-- Entry fields: d payload, id job id, a attempt, o job options; see job.rs.

-- The fields of an entry as a table (absent ones are nil).
local function hf_fields(f)
  local t = {}
  for i = 1, #f, 2 do t[f[i]] = f[i + 1] end
  return t
end

-- The fields of a job entry as a table. An entry without `d` is another producer's: its fields
-- are its data, as a JSON object of strings in the entry's order (job.rs `field_map_json`), and
-- none of them is read as holdfast's.
local function hf_entry(f)
  local t = hf_fields(f)
  if t.d then return t end
  local parts = {}
  for i = 1, #f - 1, 2 do
    parts[#parts + 1] = cjson.encode(f[i]) .. ':' .. cjson.encode(f[i + 1])
  end
  return { d = '{' .. table.concat(parts, ',') .. '}' }
end

-- Adds a job entry, leaving out what readers take as the default: no id (the entry id is the
-- job id), attempt 1, no options. Returns the entry id.
local function hf_xadd(key, payload, id, attempt, options)
  local fields = { 'd', payload }
  if id and id ~= '' then fields[#fields + 1] = 'id'; fields[#fields + 1] = id end
  if attempt and tostring(attempt) ~= '1' then fields[#fields + 1] = 'a'; fields[#fields + 1] = attempt end
  if options and options ~= '' then fields[#fields + 1] = 'o'; fields[#fields + 1] = options end
  return redis.call('XADD', key, '*', unpack(fields))
end

-- A group name as the hex of its bytes (envelope.rs `g<hex>`).
local function hf_hex(s)
  return (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end))
end

-- Options with the job marked as one consumer group's (`g<hex>`, replacing any mark it had):
-- a retry goes back into the stream every group reads, and only its own group runs it. An
-- empty group (list mode) leaves the job unmarked.
local function hf_for_group(options, group)
  local items = {}
  for item in string.gmatch(options, '[^;]+') do
    if string.sub(item, 1, 1) ~= 'g' then items[#items + 1] = item end
  end
  if group ~= '' then items[#items + 1] = 'g' .. hf_hex(group) end
  return table.concat(items, ';')
end

-- Whether options mark the job as another group's than `group` (envelope.rs reads a malformed
-- mark as none: every group's).
local function hf_other_group(options, group)
  local mark = string.match(';' .. options .. ';', ';g(%x+);')
  return mark ~= nil and #mark % 2 == 0 and mark ~= hf_hex(group)
end
