-- Roster::leave after a sweep. ARGV[5] id, ARGV[6] holder.
local id, holder = ARGV[5], ARGV[6]
sweep()
local rec = load_lease(id)
if rec and rec.holder == holder then
  remove(id)
  emit('leave', cjson.encode(rec.client), holder, ',"cause":"closed"')
  return reply('ok', false)
end
return reply('stale', false)
