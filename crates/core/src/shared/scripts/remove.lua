-- The server API's kick (Roster::remove_client / remove_identity), after a
-- sweep: ARGV[9] 'id' or 'identity', ARGV[10] the id or the identity. Each
-- lease it names ends now, one leave each with cause removed, published
-- like every leave, so the instance that holds the socket closes it (4003)
-- and everyone else sees the leave. By identity, the leases are found by
-- reading the space's holders (a kick is rare; joins and leaves never
-- scan), and removed in id order.
local by, value = ARGV[9], ARGV[10]
check()
sweep()
local ids = {}
if by == 'id' then
  ids[1] = value
elseif epoch then
  local all = redis.call('HGETALL', leases)
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'h:' then
      local _, identity = string.match(all[i + 1], '^(%d+) (.*)$')
      if identity == value then
        ids[#ids + 1] = string.sub(all[i], 3)
      end
    end
  end
  table.sort(ids)
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
