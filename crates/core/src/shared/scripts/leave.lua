-- Roster::leave_with after a sweep. ARGV[9] id, ARGV[10] holder, ARGV[11]
-- the client JSON the leave shows ('' for the stored one): an update
-- coalescing still held, flushed into the leave.
local id, holder, last = ARGV[9], ARGV[10], ARGV[11]
check()
sweep()
local have, _, client = lease(id)
if have == holder then
  remove(id)
  if last and last ~= '' then
    client = last
  end
  emit('leave', client, holder, ',"cause":"closed"')
  return reply('ok', false)
end
return reply('stale', false)
