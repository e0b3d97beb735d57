-- A snapshot for an instance that must resynchronise, after a sweep.
-- ARGV[9] how long a placeholder lease lasts (ms); then five arguments per
-- lease the caller knows: id, holder ('0' for a client held on another
-- instance), identity, client JSON, and expires_at ('' for a placeholder).
-- When the caller's history is not the store's (the store lost it), the
-- known leases that are missing go back, each as a join event so that
-- every instance learns of it, with its original client object (joinedAt
-- included): the caller's own with their holder and expiry, the others as
-- placeholders (holder '0') that end after ARGV[9] ms unless the instance
-- holding the socket claims them on its own resync (with its own record of
-- the client: the latest state is the holder's).
local placeholder_ms = tonumber(ARGV[9])
check()
sweep()
local status = 'ok'
if known_epoch ~= '' and known_epoch ~= epoch then
  for i = 10, #ARGV, 5 do
    local id, holder, identity, client, ends =
      ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    local have, have_identity, have_client = lease(id)
    if holder ~= '0' then
      local expires_at = math.min(tonumber(ends) or 0, now + ttl)
      if expires_at > now then
        if not have then
          ensure()
          put(id, holder, identity, client, expires_at)
          emit('join', client, holder)
          joined(identity)
          status = 'restored'
        elseif have == '0' and have_identity == identity then
          -- The placeholder is another instance's view of this lease; the
          -- holder's record (its latest state) replaces it.
          redis.call('HSET', leases, 'h:' .. id, holder .. ' ' .. identity, 'c:' .. id, client)
          extend(id, expires_at)
          emit('resume', client, holder, ',"replaced":"0"')
          status = 'restored'
        end
      end
    elseif not have then
      ensure()
      put(id, '0', identity, client, now + placeholder_ms)
      emit('join', client, '0')
      joined(identity)
      status = 'restored'
    end
  end
end
return reply(status, true)
