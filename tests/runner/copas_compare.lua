-- One copas program, run by tests/runner_cli.rs under Debian's lua-copas and under
-- socketloop.copas; both must print the same. It keeps to what both have (Debian ships
-- copas 1.x: no sleep, a loop that never returns, so the program ends with os.exit):
-- an echo server, a client thread that talks to it through copas.wrap and through the
-- raw copas functions, a handler whose error goes to its own handler, autoclose.
-- (copas 1.x's wrapped sockets have no connect nor close: the LuaSocket object does those.)
io.stdout:setvbuf('line')
local copas = require'copas'
local socket = require'socket'

local server = assert(socket.bind('127.0.0.1', 0))
local _, port = server:getsockname()

copas.addserver(server, function(raw)
	local skt = copas.wrap(raw)
	copas.setErrorHandler(function(err)
		print('handler error: ' .. tostring(err):gsub('^.-:%d+: ', ''))
	end)
	while true do
		local line, err = skt:receive('*l')
		if not line then
			print('server saw: ' .. err)
			return
		end
		if line == 'boom' then error('boom from the handler') end
		local n = tonumber(line)
		if n then
			skt:send(('x'):rep(n) .. '\n')
		else
			skt:send('echo: ' .. line .. '\n')
		end
	end
end)

copas.addthread(function()
	local function connected()
		local s = socket.tcp()
		assert(copas.connect(s, '127.0.0.1', port))
		return copas.wrap(s), s
	end
	local c, craw = connected()
	for _, msg in ipairs{'hello', 'copas', '', 'the end'} do
		c:send(msg .. '\n')
		print('client got: ' .. c:receive('*l'))
	end
	c:send('100000\n')
	local big = c:receive('*l')
	print('big reply: ' .. #big .. ' bytes')
	c:send('boom\n')
	print('after boom: ' .. tostring(select(2, c:receive('*l'))))
	craw:close()

	local raw = socket.tcp()
	assert(copas.connect(raw, '127.0.0.1', port))
	copas.send(raw, 'raw functions\n')
	print('raw got: ' .. copas.receive(raw, '*l'))
	raw:close()
	-- Let the server's handler see the close before exiting.
	local w, wraw = connected()
	w:send('last\n')
	print('client got: ' .. w:receive('*l'))
	wraw:close()
	local flush = connected()
	flush:send('sync\n')
	print('client got: ' .. flush:receive('*l'))
	io.stdout:flush()
	os.exit(0)
end)

copas.loop()
