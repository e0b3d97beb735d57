-- Roster::sweep: expires what has run out, once, whoever calls it.
sweep()
return reply('ok', false)
