-- 10 client threads x 5 connections x 30 line round trips against one server in one
-- process; every reply is checked.
local loop = require'socketloop'
local T = require'testlib'

T.run('echo 10x5x30', function()
	local served = 0
	local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
		served = served + 1
		while true do
			local line = skt:receive('*l')
			if not line then break end
			assert(skt:send(line:reverse() .. '\n'))
		end
		skt:close()
	end))
	local _, port = server:getsockname()
	local clients, replies = 10, 0
	for c = 1, clients do
		loop.newthread(function()
			for k = 1, 5 do
				local s = assert(loop.connect('127.0.0.1', port))
				for i = 1, 30 do
					local msg = ('client %d conn %d line %d'):format(c, k, i)
					assert(s:send(msg .. '\n'))
					local reply, err = s:receive('*l')
					if T.eq(reply, msg:reverse(), 'reply') then replies = replies + 1 end
				end
				s:close()
			end
			clients = clients - 1
			if clients == 0 then server:close() end
		end)
	end
	while clients > 0 do loop.sleep(0.01) end
	T.eq(replies, 10 * 5 * 30, 'replies')
	T.eq(served, 50, 'connections served')
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
