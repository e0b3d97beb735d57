-- A broadcast or cursor (section 13), after a sweep: one publish on the
-- space's channel, nothing stored. ARGV[9] the sender's id ('' for the
-- server API), ARGV[10] its holder, ARGV[11] the message as every
-- recipient gets it. A client's relay renews its lease and needs it
-- ('stale' otherwise, nothing published). The message carries the
-- space's sequence number as it stands, so that an instance behind it
-- holds the message until it has applied as much: nobody gets a message
-- from someone it has not seen join.
local from, holder, message = ARGV[9], ARGV[10], ARGV[11]
check()
sweep()
local sender = 'null'
if from ~= '' then
  if lease(from) ~= holder then
    return reply('stale', false)
  end
  extend(from, now + ttl)
  sender = '"' .. from .. '"'
end
if epoch then
  redis.call(publish, channel, '{"epoch":"' .. epoch .. '","seq":' .. ms(seq) ..
    ',"relay":true,"from":' .. sender .. ',"message":' .. message .. '}')
end
return reply('ok', false)
