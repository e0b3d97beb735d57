-- Roster::leave after a sweep. ARGV[9] id, ARGV[10] holder.
local id, holder = ARGV[9], ARGV[10]
check()
sweep()
if lease(id) == holder then
  local client = client_of(id)
  remove(id)
  emit('leave', client, holder, ',"cause":"closed"')
  return reply('ok', false)
end
return reply('stale', false)
