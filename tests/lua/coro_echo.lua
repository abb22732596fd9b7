-- The echo_many scenario on loop.coro: 10 client threads (symmetric coroutines) x 5
-- connections x 30 line round trips against one server; every reply is checked.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local U = require'threads_util'
local cl = loop.coro
local coro = require'socketloop.coro'

T.eq(type(cl), 'table', 'loop.coro')
T.eq(loop.coro, cl, 'loop.coro is made once')
for _, name in ipairs{'connect', 'newserver', 'wrap', 'start', 'stop', 'step', 'sleep', 'now',
		'stats', 'onerror', 'suspend', 'resume', 'tcp', 'tcp6'} do
	T.eq(cl[name], loop[name], 'loop.coro.' .. name .. ' is shared with loop')
end
T.ok(cl.newthread ~= loop.newthread, 'loop.coro.newthread makes coro threads')

T.run('coro echo 10x5x30', function()
	local served = 0
	local server = assert(cl.newserver('127.0.0.1', 0, function(skt)
		served = served + 1
		N.answer_lines(skt, string.reverse)
	end))
	local _, port = server:getsockname()
	local clients, replies = 10, 0
	local threads, currents = {}, {}
	for c = 1, clients do
		threads[c] = cl.newthread(function(id)
			currents[id] = cl.current()
			-- (the call waits: read `replies` only once it returned)
			local right = N.reverse_client(cl.connect, port, id, 5, 30)
			replies = replies + right
			clients = clients - 1
			if clients == 0 then server:close() end
		end, c)
		T.eq(type(threads[c]), 'thread', 'loop.coro.newthread returns the thread')
		T.eq(currents[c], threads[c], 'loop.coro.current() in it is that thread')
		T.eq(coroutine.status(threads[c]), 'suspended', 'parked on its first receive')
	end
	U.wait_until(function() return clients == 0 end, 'the clients', 20000)
	T.eq(replies, 10 * 5 * 30, 'replies')
	T.eq(served, 50, 'connections served')
	for c = 1, 10 do
		T.eq(coroutine.status(threads[c]), 'dead', 'client ' .. c .. ' ended')
	end
	T.eq(cl.current(), coro.current, 'loop.coro.current() is coro.current')
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
