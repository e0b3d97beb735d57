-- Roster::update after a sweep. ARGV[9] id, ARGV[10] holder, ARGV[11] the
-- client's new JSON (its holder's instance knows the record; only the
-- holder may replace it), ARGV[12] '1' if it is a record the instance
-- settles rather than a client's update (StoreOp::Update's if_changed):
-- then no event when the stored record is the same. A client's update is
-- an event even if equal (section 10). Renews the lease like a ping.
-- Status 'ok' if stored (and published, when an event), 'stale' if the
-- caller no longer holds a live lease.
local id, holder, client, if_changed = ARGV[9], ARGV[10], ARGV[11], ARGV[12] == '1'
check()
sweep()
local current, _, stored = lease(id)
if current == holder then
  extend(id, now + ttl)
  if not (if_changed and stored == client) then
    redis.call('HSET', leases, 'c:' .. id, client)
    emit('update', client, holder)
  end
  return reply('ok', false)
end
return reply('stale', false)
