-- Shared by the account scripts that keep the search index (service/account_search.py):
-- not a script of its own; service/store/scripts.py puts it where a script's include line
-- names it.
-- search entries of one text: lower(text) and each lower-cased part after . - _ @ +
local function search_entries(text, id)
  local low = string.lower(text)
  local out = {low .. '\0' .. id}
  for pos in string.gmatch(low, '[%.%-_@+]()') do
    if pos <= #low then out[#out + 1] = string.sub(low, pos) .. '\0' .. id end
  end
  return out
end
local function search_add(key, user, id)
  local args = {}
  for _, list in ipairs({search_entries(user, id), search_entries(id, id)}) do
    for _, member in ipairs(list) do args[#args + 1] = 0; args[#args + 1] = member end
  end
  redis.call('ZADD', key, unpack(args))
end
local function search_rem(key, user, id)
  redis.call('ZREM', key, unpack(search_entries(user, id)))
  redis.call('ZREM', key, unpack(search_entries(id, id)))
end
