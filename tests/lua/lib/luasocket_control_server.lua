-- The server side of tests/lua/luasocket_scenarios.lua, after the manner of LuaSocket's
-- test/testsrvr.lua, on socketloop.socket: it accepts a control connection and runs each
-- line received on it as Lua, after acknowledging it with an empty line; the lines work
-- on the globals `server` (the listener) and `data` (a connection they accept). Prints
-- its port first. Runs as a child process; the line 'quit' ends it.
local loop = require'socketloop'
local socket = loop.luasocket()

server = assert(socket.bind('127.0.0.1', 0))
local _, port = server:getsockname()
io.stdout:write(port, '\n')
io.stdout:flush()

while true do
	local control = assert(server:accept())
	control:setoption('tcp-nodelay', true)
	while true do
		local command = control:receive()
		if not command then break end
		control:send('\n')
		if command == 'quit' then os.exit(0) end
		assert(loadstring(command))()
	end
	control:close()
end
