-- Shared by the account scripts that keep the search index (service/account_search.py):
-- not a script of its own; service/store/scripts.py puts it where a script's include line
-- names it.
-- search entries of one text: lower(text) and each lower-cased part after . - _ @ +
-- (`whole` false: the parts only)
local function search_entries(text, id, whole)
  local low = string.lower(text)
  local out = {}
  if whole ~= false then out[1] = low .. '\0' .. id end
  for pos in string.gmatch(low, '[%.%-_@+]()') do
    if pos <= #low then out[#out + 1] = string.sub(low, pos) .. '\0' .. id end
  end
  return out
end
-- an id without A-Z needs no whole entry: the index of all accounts finds it by prefix
local function search_add(key, user, id)
  local args = {}
  local whole_id = string.lower(id) ~= id
  for _, list in ipairs({search_entries(user, id), search_entries(id, id, whole_id)}) do
    for _, member in ipairs(list) do args[#args + 1] = 0; args[#args + 1] = member end
  end
  if #args > 0 then redis.call('ZADD', key, unpack(args)) end
end
local function search_rem(key, user, id)
  redis.call('ZREM', key, unpack(search_entries(user, id)))
  redis.call('ZREM', key, unpack(search_entries(id, id)))
end
