-- Shared by every Longhouse script (prepended to each): the roster rules of
-- crates/core/src/roster.rs for a store that many instances share, and the
-- space's history (epoch, seq) that lets every instance notice a loss.
--
-- KEYS[1] leases hash: '@epoch', '@seq', and two fields per lease:
--   'h:<id>' -> '<holder> <identity>' (what the scripts read) and
--   'c:<id>' -> the client object as JSON, opaque: stored and published as
--   given, never decoded (cjson would re-encode a client's numbers).
-- KEYS[2] expiries sorted set: client id scored by expires_at (ms, the
--   store's clock).
-- ARGV[1] event channel, ARGV[2] publish command (SPUBLISH or PUBLISH),
-- ARGV[3] now in ms, '' for the store's own TIME (a number only in tests),
-- ARGV[4] how long idle keys are kept (ms), ARGV[5] the lease TTL (ms),
-- ARGV[6] a fresh random epoch, used if a new history must begin,
-- ARGV[7] the caller's epoch ('' if it knows none), ARGV[8] the highest
-- sequence number the caller has seen in it.
-- KEYS[3], KEYS[4] (only when webhooks are on, section 14): the members
--   hash ('@n' leases in the space, '<identity>' leases it holds) and the
--   space's webhook stream, to which member events are added by the same
--   script that changes the roster.
local leases, expiries = KEYS[1], KEYS[2]
local members, hooks = KEYS[3], KEYS[4]
local channel, publish = ARGV[1], ARGV[2]
local now
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[3])
end
local keep, ttl = ARGV[4], tonumber(ARGV[5])
local fresh_epoch, known_epoch, known_seq = ARGV[6], ARGV[7], tonumber(ARGV[8])
local out = {}
local epoch, seq, seq_at_start = nil, 0, 0

-- Integers as digits (Lua would write 1.764e+12 for some).
local function ms(n)
  return string.format('%.0f', n)
end
local now_text = ms(now)

-- A new history: whatever is left of the old one goes, and every instance
-- is told to resynchronise.
local function begin()
  redis.call('DEL', leases, expiries)
  if members then
    redis.call('DEL', members)
  end
  epoch, seq, seq_at_start = fresh_epoch, 0, 0
  redis.call('HSET', leases, '@epoch', epoch, '@seq', '0')
  redis.call(publish, channel, '{"epoch":"' .. epoch .. '","reset":true}')
end

-- Reads the history and checks it: an epoch, a sequence, and one expiry
-- per lease (two hash fields each). Anything missing or inconsistent, or a
-- sequence behind what the caller saw of the same epoch (a failover to a
-- lagging replica), is a loss: a new history begins. A store without
-- anything for the space is an unused space, unless the caller knew a
-- history of it, which is then lost too.
local function check()
  local h = redis.call('HMGET', leases, '@epoch', '@seq')
  local n = redis.call('ZCARD', expiries)
  local fields = redis.call('HLEN', leases)
  if h[1] then
    local s = tonumber(h[2])
    if s and fields == 2 + 2 * n and not (h[1] == known_epoch and s < known_seq) then
      epoch, seq, seq_at_start = h[1], s, s
      return
    end
  elseif fields == 0 and n == 0 and known_epoch == '' then
    return
  end
  begin()
end

-- A history to write into.
local function ensure()
  if not epoch then
    begin()
  end
end

-- Gives an event the next sequence number, publishes it and keeps it for
-- the reply. `client` is the client's JSON text, as stored.
local function emit(kind, client, holder, extra)
  seq = seq + 1
  local text = '{"epoch":"' .. epoch .. '","seq":' .. ms(seq) .. ',"kind":"' .. kind ..
    '","client":' .. client .. ',"holder":"' .. holder .. '"' .. (extra or '') .. '}'
  redis.call(publish, channel, text)
  out[#out + 1] = text
end

-- One member event on the webhook stream: type, when, the history, and the
-- identity and reason when it has them.
local function hook(kind, identity, reason)
  local fields = {'t', kind, 'a', now_text, 'e', epoch}
  if identity then
    fields[#fields + 1] = 'i'
    fields[#fields + 1] = identity
  end
  if reason then
    fields[#fields + 1] = 'r'
    fields[#fields + 1] = reason
  end
  redis.call('XADD', hooks, '*', unpack(fields))
end

-- A lease of `identity` began: the space's first makes space.occupied,
-- the identity's first member.joined (the counts are kept here, never
-- found by scanning).
local function joined(identity)
  if not members then
    return
  end
  if redis.call('HINCRBY', members, '@n', 1) == 1 then
    hook('space.occupied')
  end
  if redis.call('HINCRBY', members, identity, 1) == 1 then
    hook('member.joined', identity)
  end
end

-- A lease of `identity` ended with `reason`: the identity's last makes
-- member.left, the space's last space.vacated. A lease these counts never
-- saw begin (webhooks turned on since) makes none.
local function left(identity, reason)
  if not members then
    return
  end
  local n = redis.call('HINCRBY', members, identity, -1)
  if n <= 0 then
    redis.call('HDEL', members, identity)
    if n == 0 then
      hook('member.left', identity, reason)
    end
  end
  local total = redis.call('HINCRBY', members, '@n', -1)
  if total <= 0 then
    redis.call('HDEL', members, '@n')
    if total == 0 and n == 0 then
      hook('space.vacated')
    end
  end
end

-- The holder, identity and client JSON of lease `id` (one read), or nil.
local function lease(id)
  local r = redis.call('HMGET', leases, 'h:' .. id, 'c:' .. id)
  if not r[1] then
    return nil
  end
  local holder, identity = string.match(r[1], '^(%d+) (.*)$')
  return holder, identity, r[2]
end

local function set_holder(id, holder, identity)
  redis.call('HSET', leases, 'h:' .. id, holder .. ' ' .. identity)
end

local function put(id, holder, identity, client, expires_at)
  redis.call('HSET', leases, 'h:' .. id, holder .. ' ' .. identity, 'c:' .. id, client)
  redis.call('ZADD', expiries, ms(expires_at), id)
end

local function remove(id)
  redis.call('HDEL', leases, 'h:' .. id, 'c:' .. id)
  redis.call('ZREM', expiries, id)
end

-- Moves a lease's end to `expires_at` unless it already ends later
-- (Roster::renew_unswept takes the later of the two too).
local function extend(id, expires_at)
  local score = tonumber(redis.call('ZSCORE', expiries, id) or '0')
  if expires_at > score then
    redis.call('ZADD', expiries, ms(expires_at), id)
  end
end

-- Roster::sweep: every lease with expires_at <= now, earliest first, each
-- one leave.
local function sweep()
  if not epoch then
    return
  end
  local due = redis.call('ZRANGEBYSCORE', expiries, '-inf', now_text)
  for _, id in ipairs(due) do
    local holder, identity, client = lease(id)
    remove(id)
    if holder and client then
      emit('leave', client, holder, ',"cause":"expired"')
      left(identity, 'expired')
    end
  end
end

-- The reply: status, the history after the call, the store's clock, the
-- events, the next expiry, and every lease if asked.
local function reply(status, with_snapshot)
  local next_expiry, snapshot = 'null', 'null'
  if epoch then
    if seq ~= seq_at_start then
      redis.call('HSET', leases, '@seq', ms(seq))
    end
    redis.call('PEXPIRE', leases, keep)
    redis.call('PEXPIRE', expiries, keep)
    if members then
      redis.call('PEXPIRE', members, keep)
      redis.call('PEXPIRE', hooks, keep)
    end
    local first = redis.call('ZRANGE', expiries, 0, 0, 'WITHSCORES')
    if first[2] then
      next_expiry = '"' .. first[2] .. '"'
    end
  end
  if with_snapshot then
    local parts = {}
    if epoch then
      local all = redis.call('HGETALL', leases)
      local holders = {}
      for i = 1, #all, 2 do
        if string.sub(all[i], 1, 2) == 'h:' then
          holders[string.sub(all[i], 3)] = string.match(all[i + 1], '^(%d+) ')
        end
      end
      for i = 1, #all, 2 do
        if string.sub(all[i], 1, 2) == 'c:' then
          parts[#parts + 1] = '{"holder":"' .. holders[string.sub(all[i], 3)] ..
            '","client":' .. all[i + 1] .. '}'
        end
      end
    end
    snapshot = '[' .. table.concat(parts, ',') .. ']'
  end
  local e = 'null'
  if epoch then
    e = '"' .. epoch .. '"'
  end
  return '{"status":"' .. status .. '","epoch":' .. e .. ',"seq":' .. ms(seq) ..
    ',"now":' .. now_text .. ',"events":[' .. table.concat(out, ',') ..
    '],"next":' .. next_expiry .. ',"leases":' .. snapshot .. '}'
end
