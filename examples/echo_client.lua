-- A line echo client: socketloop examples/echo_client.lua port word...
local loop = require'socketloop'
local port = assert(tonumber(arg[1]), 'usage: echo_client.lua port word...')

local skt = assert(loop.connect('127.0.0.1', port))
skt:settimeout(5)
for i = 2, #arg do
	assert(skt:send(arg[i] .. '\n'))
	print(assert(skt:receive('*l')))
end
skt:close()
