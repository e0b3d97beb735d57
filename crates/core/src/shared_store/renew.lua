-- Roster::renew after a sweep. ARGV[5] id, ARGV[6] holder, ARGV[7]
-- expires_at. Status "ok" if renewed, "stale" if not.
local id, holder, expires_at = ARGV[5], ARGV[6], ARGV[7]
sweep()
local rec = load_lease(id)
if rec and rec.holder == holder then
  local score = tonumber(redis.call('ZSCORE', expiries, id) or '0')
  if now < score then
    redis.call('ZADD', expiries, expires_at, id)
    return reply('ok', false)
  end
end
return reply('stale', false)
