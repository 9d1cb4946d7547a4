-- atomic.lua - the client's one server-side script (inferkv Python client).
--
-- Why one script: every server that has scripting (Redis 7, a test double,
-- a future inferkv with Lua) runs this same source, loaded once per client
-- (SCRIPT LOAD) and re-loaded on NOSCRIPT.  A server without scripting
-- (inferkv today) gets the same operations as WATCH / MULTI transactions
-- computed in Python (inferkv/ops.py, class docs say which branch below each
-- mirrors); tests/test_atomic.py runs every operation both ways against
-- redis-server and compares the stored bytes, so the two cannot drift.
--
-- KEYS[1]: the record's hash.  ARGV[1]: operation, ARGV[2]: the model's
-- index key base ("<prefix>:__idx__:<Model>:"), ARGV[3]: the record's id.
-- Tag index keys are base .. field .. ":" .. value (a set of ids), range
-- index keys are passed whole.  They are not declared in KEYS: the keys a
-- tag value names are only known here, after reading the old value, so this
-- script is for a standalone server (as is the client's index layout).
--
-- JSON containers are edited as text, never decoded and re-encoded: cjson
-- would turn [] into {} and print numbers with 14 digits.  The client
-- writes canonical compact JSON (no spaces), which the splices below keep.
-- Errors: "NOTFOUND <key>" (the record does not exist), "CORRUPT <what>"
-- (a stored field that is not what its type says).

local key = KEYS[1]
local op, base, id = ARGV[1], ARGV[2], ARGV[3]

local function hget(f)
  local v = redis.call('HGET', key, f)
  if v == false then return nil end
  return v
end

local function retag(f, old, new)
  if old == new then return end
  if old ~= nil then redis.call('SREM', base .. f .. ':' .. old, id) end
  if new ~= nil then redis.call('SADD', base .. f .. ':' .. new, id) end
end

local function must_exist()
  if redis.call('EXISTS', key) == 0 then
    return redis.error_reply('NOTFOUND ' .. key)
  end
  return nil
end

-- the stored text of a list ('[') or dict ('{') field, checked to be one
-- well-formed JSON value of that kind; nil when the field is absent
local function container(f, open)
  local v = hget(f)
  if v == nil then return nil end
  local ok, decoded = pcall(cjson.decode, v)
  if not ok or type(decoded) ~= 'table' or string.sub(v, 1, 1) ~= open then
    return redis.error_reply('CORRUPT ' .. key .. ' field ' .. f .. ' is not a JSON ' ..
      (open == '[' and 'array' or 'object'))
  end
  return v
end

-- the top-level members of a compact JSON array or object, as texts
local function split_top(s)
  local items, n = {}, #s
  if n <= 2 then return items end
  local depth, instr, esc, start = 0, false, false, 2
  for i = 2, n - 1 do
    local c = string.byte(s, i)
    if instr then
      if esc then esc = false
      elseif c == 92 then esc = true
      elseif c == 34 then instr = false end
    elseif c == 34 then instr = true
    elseif c == 91 or c == 123 then depth = depth + 1
    elseif c == 93 or c == 125 then depth = depth - 1
    elseif c == 44 and depth == 0 then
      items[#items + 1] = string.sub(s, start, i - 1)
      start = i + 1
    end
  end
  items[#items + 1] = string.sub(s, start, n - 1)
  return items
end

if op == 'save' then
  -- ARGV: nset, (field, value)*, ndel, field*, ntag, tag field*
  local i = 4
  local nset = tonumber(ARGV[i]); i = i + 1
  local newv, hset = {}, {'HSET', key}
  for _ = 1, nset do
    newv[ARGV[i]] = ARGV[i + 1]
    hset[#hset + 1] = ARGV[i]; hset[#hset + 1] = ARGV[i + 1]
    i = i + 2
  end
  local ndel = tonumber(ARGV[i]); i = i + 1
  local hdel = {'HDEL', key}
  for _ = 1, ndel do hdel[#hdel + 1] = ARGV[i]; i = i + 1 end
  local ntag = tonumber(ARGV[i]); i = i + 1
  for _ = 1, ntag do
    local f = ARGV[i]; i = i + 1
    retag(f, hget(f), newv[f])
  end
  if nset > 0 then redis.call(unpack(hset)) end
  if ndel > 0 then redis.call(unpack(hdel)) end
  return 1

elseif op == 'delete' then
  -- ARGV: ntag, tag field*
  for j = 1, tonumber(ARGV[4]) do
    local f = ARGV[4 + j]
    retag(f, hget(f), nil)
  end
  return redis.call('DEL', key)

elseif op == 'incr' then
  -- ARGV: field, by, 'int' | 'float', tagged '1' | '0', range key or ''
  local e = must_exist(); if e then return e end
  local f, by = ARGV[4], ARGV[5]
  local old = hget(f)
  if ARGV[6] == 'float' then redis.call('HINCRBYFLOAT', key, f, by)
  else redis.call('HINCRBY', key, f, by) end
  local new = hget(f)
  if ARGV[8] ~= '' then redis.call('ZINCRBY', ARGV[8], by, id) end
  if ARGV[7] == '1' then retag(f, old, new) end
  return new

elseif op == 'append' then
  -- ARGV: field, text, tagged '1' | '0'
  local e = must_exist(); if e then return e end
  local f = ARGV[4]
  local old = hget(f)
  local new = (old or '') .. ARGV[5]
  redis.call('HSET', key, f, new)
  if ARGV[6] == '1' then retag(f, old, new) end
  return new

elseif op == 'push' then
  -- ARGV: field, 'L' | 'R', n, item JSON*   (L: the items, in order, go first)
  local e = must_exist(); if e then return e end
  local f = ARGV[4]
  local old = container(f, '[')
  if type(old) == 'table' then return old end
  local items = {}
  for j = 1, tonumber(ARGV[6]) do items[j] = ARGV[6 + j] end
  local joined = table.concat(items, ',')
  local body = old and string.sub(old, 2, -2) or ''
  local new
  if body == '' then new = '[' .. joined .. ']'
  elseif ARGV[5] == 'R' then new = '[' .. body .. ',' .. joined .. ']'
  else new = '[' .. joined .. ',' .. body .. ']' end
  redis.call('HSET', key, f, new)
  return #split_top(new)

elseif op == 'pop' then
  -- ARGV: field, 'L' | 'R'; answers the item's JSON, or nil for an empty list
  local e = must_exist(); if e then return e end
  local f = ARGV[4]
  local old = container(f, '[')
  if type(old) == 'table' then return old end
  if old == nil then return false end
  local items = split_top(old)
  if #items == 0 then return false end
  local v
  if ARGV[5] == 'R' then v = table.remove(items) else v = table.remove(items, 1) end
  redis.call('HSET', key, f, '[' .. table.concat(items, ',') .. ']')
  return v

elseif op == 'dset' or op == 'ddel' then
  -- ARGV: field, key JSON, (dset) value JSON; answers 1 when the key was
  -- added (dset) or removed (ddel), else 0
  local e = must_exist(); if e then return e end
  local f = ARGV[4]
  local old = container(f, '{')
  if type(old) == 'table' then return old end
  if old == nil and op == 'ddel' then return 0 end
  local members = split_top(old or '{}')
  local prefix = ARGV[5] .. ':'
  local at = nil
  for j, m in ipairs(members) do
    if string.sub(m, 1, #prefix) == prefix then at = j; break end
  end
  if op == 'dset' then
    if at then members[at] = prefix .. ARGV[6] else members[#members + 1] = prefix .. ARGV[6] end
  else
    if not at then return 0 end
    table.remove(members, at)
  end
  redis.call('HSET', key, f, '{' .. table.concat(members, ',') .. '}')
  if at then return op == 'dset' and 0 or 1 end
  return 1
end

return redis.error_reply('ERR atomic.lua: unknown operation ' .. tostring(op))
