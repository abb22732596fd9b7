-- The UDP echo on socketloop: one loop thread receives each datagram and sends it back
-- (benches/udp_bench.sh; raw mio's is `rawecho --udp`).
-- usage: socketloop benches/servers/udp_socketloop.lua PORT
local loop = require'socketloop'
local port = assert(tonumber(arg[1]), 'usage: udp_socketloop.lua PORT')
local u = assert(loop.udp())
assert(u:setsockname('127.0.0.1', port))
io.stderr:write('socketloop: UDP echo on 127.0.0.1:', port, '\n')
loop.newthread(function()
	while true do
		local data, ip, p = u:receivefrom()
		if data then u:sendto(data, ip, p) end
	end
end)
loop.start()
