-- Roster::update after a sweep. ARGV[9] id, ARGV[10] holder, ARGV[11] the
-- client's new JSON (its holder's instance knows the record; only the
-- holder may replace it). Renews the lease like a ping. Status 'ok' if
-- stored and published, 'stale' if the caller no longer holds a live
-- lease.
local id, holder, client = ARGV[9], ARGV[10], ARGV[11]
check()
sweep()
if lease(id) == holder then
  redis.call('HSET', leases, 'c:' .. id, client)
  extend(id, now + ttl)
  emit('update', client, holder)
  return reply('ok', false)
end
return reply('stale', false)
