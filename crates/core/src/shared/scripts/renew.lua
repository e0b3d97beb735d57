-- Roster::renew after a sweep. ARGV[9] id, ARGV[10] holder. Status 'ok' if
-- renewed, 'stale' if the caller no longer holds a live lease.
local id, holder = ARGV[9], ARGV[10]
check()
sweep()
if lease(id) == holder then
  extend(id, now + ttl)
  return reply('ok', false)
end
return reply('stale', false)
