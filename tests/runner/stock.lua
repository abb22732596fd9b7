-- A script written for stock luajit (LUA_CPATH finds the module): threads, a server, then
-- loop.start(), loop.stop() and loop.start(timeout). The runner must run it unchanged,
-- with the same output; tests/runner_cli.rs runs it both ways.
local loop = require'socketloop'

local say = print

local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
	local line = skt:receive('*l')
	while line do
		skt:send(line:upper() .. '\n')
		line = skt:receive('*l')
	end
	skt:close()
end))
local _, port = server:getsockname()

loop.newthread(function()
	local s = assert(loop.connect('127.0.0.1', port))
	for i = 1, 3 do
		s:send('line ' .. i .. '\n')
		say('reply', s:receive('*l'))
	end
	s:close()
	loop.sleep(0.01)
	say('stopping')
	loop.stop()
end)

say('before start')
loop.start() -- returns at loop.stop(), with the server still listening
say('after start', loop.stats().pending)

local t0 = loop.now()
loop.start(0.05) -- returns after its timeout: the server keeps the loop busy
say('after start(0.05)', loop.now() - t0 >= 0.05)

server:close()
loop.newthread(function()
	loop.sleep(0.01)
	say('last thread')
end)
loop.start() -- returns when nothing is left
say('done', loop.stats().pending)
