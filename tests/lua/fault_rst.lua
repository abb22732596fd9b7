-- Faults: a peer resets the connection (RST) in the middle of a receive and in the middle
-- of a send, on one connection of a server that goes on serving other clients. The
-- handler gets nil, 'closed' with exactly the bytes that had arrived (receive) or the
-- index of the last byte the kernel took (send); nothing else is disturbed.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local await = N.await

-- A client that resets its connection: linger 0, then close.
local function reset(skt)
	assert(skt:setoption('linger', {on = true, timeout = 0}))
	skt:close()
end

-- Some healthy clients, served while or after a fault: all replies checked.
local function healthy(port, clients)
	local done = {}
	for i = 1, clients do
		done[i] = N.spawn(N.reverse_client, loop.connect, port, i, 1, 20)
	end
	await(function()
		for i = 1, clients do if not done[i]() then return false end end
		return true
	end, 'the healthy clients')
	local right = 0
	for i = 1, clients do right = right + done[i]()[1] end
	return right
end

T.run('peer reset in the middle of a receive', function()
	local srv, port, conns = N.recording_server('big', '')
	local c = assert(loop.connect('127.0.0.1', port))
	c:settimeout(10)
	T.ok(N.exchange(c, 'first line', 'enil tsrif'), 'a line before the fault')
	assert(c:send('half a li'))
	await(function() return conns[1] and conns[1].skt:dirty() end, 'the half line to be buffered')
	local others = N.spawn(healthy, port, 5)
	reset(c)
	await(function() return conns[1].outcome end, 'the handler to see the reset')
	local o = conns[1].outcome
	T.eq(o[1], 'receive', 'the receive failed')
	T.eq(o[2], 'closed', 'with closed')
	T.eq(o[3], 'half a li', 'and exactly the bytes that had arrived')
	await(others, 'the clients served meanwhile')
	T.eq(others()[1], 5 * 20, 'every reply to the other clients right')
	T.eq(healthy(port, 3), 3 * 20, 'and the server serves after the fault')
	srv:close()
end)

T.run('peer reset in the middle of a send', function()
	local size = 16 * 1024 * 1024
	local srv, port, conns = N.recording_server('big', ('z'):rep(size))
	local c = assert(loop.connect('127.0.0.1', port))
	c:settimeout(10)
	c:setoption('recv-buffer-size', 65536)
	assert(c:send('big\n'))
	local got = assert(c:receive(200000))
	T.eq(got, ('z'):rep(200000), 'the first bytes of the big reply')
	T.eq(conns[1].outcome, nil, 'the handler is still sending')
	local others = N.spawn(healthy, port, 5)
	reset(c)
	await(function() return conns[1].outcome end, 'the handler to see the reset')
	local o = conns[1].outcome
	T.eq(o[1], 'send', 'the send failed')
	T.eq(o[2], 'closed', 'with closed')
	T.ok(type(o[3]) == 'number' and o[3] >= 200000 and o[3] < size,
		'the last index sent is between what the peer read and the end: ' .. tostring(o[3]))
	await(others, 'the clients served meanwhile')
	T.eq(others()[1], 5 * 20, 'every reply to the other clients right')
	T.eq(healthy(port, 3), 3 * 20, 'and the server serves after the fault')
	srv:close()
end)

N.finish()
