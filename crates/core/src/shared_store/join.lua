-- Roster::join after a sweep (Space::join). ARGV[5] id, ARGV[6] identity,
-- ARGV[7] holder, ARGV[8] expires_at, ARGV[9] the client JSON for a fresh
-- lease, ARGV[10] "1" to return a snapshot, ARGV[11] the most leases the
-- space may hold (MAX_CLIENTS_PER_SPACE; "0" or absent: no limit). A resume
-- of a live lease is always allowed; a new lease beyond the limit is
-- refused ('full') and changes nothing, atomically with the count.
local id, identity, holder, expires_at = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local fresh, want = ARGV[9], ARGV[10] == '1'
local max_clients = tonumber(ARGV[11] or '0') or 0
sweep()
local rec = load_lease(id)
if rec then
  -- Alive: the sweep removed every lease that was not.
  if rec.client.identity ~= identity then
    return reply('refused', want)
  end
  local replaced = rec.holder
  rec.holder = holder
  redis.call('HSET', leases, id, cjson.encode(rec))
  redis.call('ZADD', expiries, expires_at, id)
  emit('resume', cjson.encode(rec.client), holder, ',"replaced":"' .. replaced .. '"')
else
  -- After the sweep every lease left is alive.
  if max_clients > 0 and redis.call('HLEN', leases) >= max_clients then
    return reply('full', want)
  end
  redis.call('HSET', leases, id, '{"client":' .. fresh .. ',"holder":"' .. holder .. '"}')
  redis.call('ZADD', expiries, expires_at, id)
  emit('join', fresh, holder)
end
return reply('ok', want)
