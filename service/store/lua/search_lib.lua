-- Shared by the account scripts that keep the search index (service/account_search.py):
-- not a script of its own; service/store/scripts.py puts it where a script's include line
-- names it.
-- search entries of one text: lower(text) and each lower-cased part after . - _ @ +
-- (`whole` false: the parts only; `tld` false: not the last label of a mail domain, the
-- `com` of x@example.com, a word of nearly every account)
local function search_entries(text, id, whole, tld)
  local low = string.lower(text)
  local out = {}
  if whole ~= false then out[1] = low .. '\0' .. id end
  local at = string.find(low, '@', 1, true)
  for pos in string.gmatch(low, '[%.%-_@+]()') do
    if pos <= #low then
      local part = string.sub(low, pos)
      local label = tld == false and at ~= nil and pos > at
        and string.sub(low, pos - 1, pos - 1) == '.' and not string.find(part, '[%.%-_@+]')
      if not label then out[#out + 1] = part .. '\0' .. id end
    end
  end
  return out
end
-- an id without A-Z needs no whole entry: the index of all accounts finds it by prefix
local function search_add(key, user, id)
  local args = {}
  local whole_id = string.lower(id) ~= id
  for _, list in ipairs({search_entries(user, id, true, false), search_entries(id, id, whole_id, false)}) do
    for _, member in ipairs(list) do args[#args + 1] = 0; args[#args + 1] = member end
  end
  if #args > 0 then redis.call('ZADD', key, unpack(args)) end
end
-- every entry an account may have, those older versions wrote included
local function search_rem(key, user, id)
  redis.call('ZREM', key, unpack(search_entries(user, id)))
  redis.call('ZREM', key, unpack(search_entries(id, id)))
end
