-- Shared by the account scripts that write a granted-scope list (service/scope_sets.py): not
-- a script of its own; service/store/scripts.py puts it where a script's include line names it.
-- The field/value pairs of ARGV from `first` on, a `scopes` JSON list replaced by '#' and 16
-- hex digits of its SHA-1, the list stored under that reference in the partition's hash
-- `sets` by this same script (so that no failover keeps a reference and loses its list).
local function scoped_pairs(sets, first)
  local out = {}
  for i = first, #ARGV, 2 do
    local field, value = ARGV[i], ARGV[i + 1]
    if field == 'scopes' and string.sub(value, 1, 1) ~= '#' then
      local ref = '#' .. string.sub(redis.sha1hex(value), 1, 16)
      redis.call('HSETNX', sets, ref, value)
      value = ref
    end
    out[#out + 1] = field
    out[#out + 1] = value
  end
  return out
end
