-- Shared by every Longhouse script (prepended to each). The roster rules of
-- crates/core/src/roster.rs, for a store that many instances share.
-- KEYS[1] leases hash (id -> record JSON), KEYS[2] expiries sorted set
-- (id scored by expires_at ms), KEYS[3] sequence counter.
-- ARGV[1] event channel, ARGV[2] publish command (SPUBLISH or PUBLISH),
-- ARGV[3] now (ms), ARGV[4] how long idle keys are kept (ms).
local leases, expiries, seqkey = KEYS[1], KEYS[2], KEYS[3]
local channel, publish = ARGV[1], ARGV[2]
local now_text = ARGV[3]
local now = tonumber(now_text)
local keep = ARGV[4]
local out = {}

-- Gives an event the next sequence number, publishes it and keeps it for
-- the reply. `client` is the client's JSON text.
local function emit(kind, client, holder, extra)
  local seq = redis.call('INCR', seqkey)
  local text = '{"seq":' .. seq .. ',"kind":"' .. kind .. '","client":' .. client ..
    ',"holder":"' .. holder .. '"' .. (extra or '') .. '}'
  redis.call(publish, channel, text)
  out[#out + 1] = text
end

local function load_lease(id)
  local raw = redis.call('HGET', leases, id)
  if not raw then
    return nil
  end
  return cjson.decode(raw)
end

local function remove(id)
  redis.call('HDEL', leases, id)
  redis.call('ZREM', expiries, id)
end

-- Roster::sweep: every lease with expires_at <= now, earliest first, each
-- one leave.
local function sweep()
  local due = redis.call('ZRANGEBYSCORE', expiries, '-inf', now_text)
  for _, id in ipairs(due) do
    local rec = load_lease(id)
    remove(id)
    if rec then
      emit('leave', cjson.encode(rec.client), rec.holder, ',"cause":"expired"')
    end
  end
end

-- The reply: status, events, the next expiry, and the snapshot if asked.
local function reply(status, with_snapshot)
  for _, key in ipairs({leases, expiries, seqkey}) do
    redis.call('PEXPIRE', key, keep)
  end
  local next_expiry = 'null'
  local first = redis.call('ZRANGE', expiries, 0, 0, 'WITHSCORES')
  if first[2] then
    next_expiry = '"' .. first[2] .. '"'
  end
  local snapshot = 'null'
  if with_snapshot then
    local seq = tonumber(redis.call('GET', seqkey) or '0')
    snapshot = '{"seq":' .. seq .. ',"leases":[' ..
      table.concat(redis.call('HVALS', leases), ',') .. ']}'
  end
  return '{"status":"' .. status .. '","events":[' .. table.concat(out, ',') ..
    '],"next":' .. next_expiry .. ',"snapshot":' .. snapshot .. '}'
end
