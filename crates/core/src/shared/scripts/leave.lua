-- Roster::leave after a sweep. ARGV[9] id, ARGV[10] holder.
local id, holder = ARGV[9], ARGV[10]
check()
sweep()
local have, _, client = lease(id)
if have == holder then
  remove(id)
  emit('leave', client, holder, ',"cause":"closed"')
  return reply('ok', false)
end
return reply('stale', false)
