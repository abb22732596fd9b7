-- 10 client threads x 5 connections x 30 line round trips against one server in one
-- process; every reply is checked.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'

T.run('echo 10x5x30', function()
	local served = 0
	local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
		served = served + 1
		N.answer_lines(skt, string.reverse)
	end))
	local _, port = server:getsockname()
	local clients, replies = 10, 0
	for c = 1, clients do
		loop.newthread(function()
			-- (the call waits: read `replies` only once it returned)
			local right = N.reverse_client(loop.connect, port, c, 5, 30)
			replies = replies + right
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
