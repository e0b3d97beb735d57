-- Roster::join after a sweep (Space::join). ARGV[9] id, ARGV[10] identity,
-- ARGV[11] holder, ARGV[12] the client JSON of a fresh lease (its joinedAt
-- stamped by the caller from its estimate of the store's clock), ARGV[13]
-- '1' to return a snapshot, ARGV[14] the most leases the space may hold
-- (MAX_CLIENTS_PER_SPACE; '0': no limit). A resume of a live lease is
-- always allowed; a new lease beyond the limit is refused ('full') and
-- changes nothing, atomically with the count.
local id, identity, holder, fresh = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local want, max_clients = ARGV[13] == '1', tonumber(ARGV[14]) or 0
check()
sweep()
local old_holder, old_identity, old_client = lease(id)
if old_holder then
  -- Alive: the sweep removed every lease that was not.
  if old_identity ~= identity then
    return reply('refused', want)
  end
  set_holder(id, holder, identity)
  redis.call('ZADD', expiries, ms(now + ttl), id)
  emit('resume', old_client, holder, ',"replaced":"' .. old_holder .. '"')
else
  -- After the sweep every lease left is alive.
  if max_clients > 0 and redis.call('ZCARD', expiries) >= max_clients then
    return reply('full', want)
  end
  ensure()
  put(id, holder, identity, fresh, now + ttl)
  emit('join', fresh, holder)
  joined(identity)
end
return reply('ok', want)
