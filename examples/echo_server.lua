-- A line echo server: socketloop examples/echo_server.lua [port]   (default 8080)
-- Try it with: socketloop examples/echo_client.lua 8080 hello world
local loop = require'socketloop'
local port = tonumber(arg and arg[1]) or 8080

local server = assert(loop.newserver('127.0.0.1', port, function(client)
	client:settimeout(60) -- drop clients idle for a minute
	while true do
		local line, err = client:receive('*l')
		if not line then break end
		if not client:send(line .. '\n') then break end
	end
	client:close()
end))
print(('echo server on %s:%d (Ctrl-C stops it)'):format(server:getsockname()))
loop.start()
