-- A snapshot for a hub that must resynchronise, after a sweep. ARGV[5] the
-- hub's applied sequence number, ARGV[6] expires_at for re-asserted
-- leases, ARGV[7] a JSON array of the records the hub knows (holder "0"
-- when it is not the holder's instance).
-- The sequence only goes down when Redis lost the space (a restart or a
-- failover without the data): then the known leases are put back with
-- their joinedAt, without events, and the sequence continues from the
-- hub's, so nobody connected appears to have left. A record that another
-- instance put back with holder "0" gets its holder from the instance that
-- has the socket.
local applied, expires_at = tonumber(ARGV[5]), ARGV[6]
local known = cjson.decode(ARGV[7])
sweep()
local lost = tonumber(redis.call('GET', seqkey) or '0') < applied
local status = 'ok'
for _, rec in ipairs(known) do
  local id = rec.client.id
  local have = load_lease(id)
  if not have and lost then
    redis.call('HSET', leases, id, cjson.encode(rec))
    redis.call('ZADD', expiries, expires_at, id)
    status = 'restored'
  elseif have and have.holder == '0' and rec.holder ~= '0'
      and have.client.identity == rec.client.identity then
    have.holder = rec.holder
    redis.call('HSET', leases, id, cjson.encode(have))
  end
end
if lost then
  redis.call('SET', seqkey, applied)
  status = 'restored'
end
return reply(status, true)
