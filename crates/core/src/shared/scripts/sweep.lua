-- Roster::sweep: expires what has run out, once, whoever calls it.
check()
sweep()
return reply('ok', false)
