-- A self-contained demo: an echo server and three clients in one process, one thread
-- per connection, printing what they exchange.
--   socketloop examples/echo.lua          (or: luajit examples/echo.lua with the module)
local loop = require'socketloop'

local server = assert(loop.newserver('127.0.0.1', 0, function(client)
	local ip, port = client:getpeername()
	while true do
		local line = client:receive('*l')
		if not line then break end
		client:send(line:upper() .. '\n')
	end
	print(('server: %s:%d closed'):format(ip, port))
	client:close()
end))
local _, port = server:getsockname()
print('server: listening on 127.0.0.1:' .. port)

local words = {'hello', 'from', 'three', 'coroutines', 'at', 'once'}
local running = 3
for id = 1, running do
	loop.newthread(function()
		local skt = assert(loop.connect('127.0.0.1', port))
		for i = id, #words, 3 do
			skt:send(words[i] .. '\n')
			print(('client %d: sent %-10s got %s'):format(id, words[i], skt:receive('*l')))
		end
		skt:close()
		running = running - 1
		if running == 0 then server:close() end
	end)
end

loop.start()
print('done')
