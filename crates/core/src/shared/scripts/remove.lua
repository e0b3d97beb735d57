-- The server API's kick (Roster::remove_client / remove_identity), after a
-- sweep: ARGV[9] 'id' or 'identity', ARGV[10] the id or the identity. Each
-- lease it names ends now, one leave each with cause removed, published
-- like every leave, so the instance that holds the socket closes it (4003)
-- and everyone else sees the leave. By identity, the leases are found by
-- reading the space's holders (a kick is rare; joins and leaves never
-- scan), and removed earliest joined first, then by id (as
-- Roster::remove_identity: joinedAt is RFC 3339 UTC, so its text sorts as
-- its time).
local by, value = ARGV[9], ARGV[10]
check()
sweep()
local ids = {}
if by == 'id' then
  ids[1] = value
elseif epoch then
  local all = redis.call('HGETALL', leases)
  local clients = {}
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'c:' then
      clients[string.sub(all[i], 3)] = all[i + 1]
    end
  end
  local joined_at = {}
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'h:' then
      local _, identity = string.match(all[i + 1], '^(%d+) (.*)$')
      if identity == value then
        local id = string.sub(all[i], 3)
        ids[#ids + 1] = id
        joined_at[id] = string.match(clients[id] or '', '"joinedAt":"([^"]*)"') or ''
      end
    end
  end
  table.sort(ids, function(a, b)
    if joined_at[a] ~= joined_at[b] then
      return joined_at[a] < joined_at[b]
    end
    return a < b
  end)
end
for _, id in ipairs(ids) do
  local holder, identity, client = lease(id)
  if holder and client then
    remove(id)
    emit('leave', client, holder, ',"cause":"removed"')
    left(identity, 'removed')
  end
end
return reply('ok', false)
