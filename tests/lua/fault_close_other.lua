-- Faults: a socket closed by another loop thread (a supervisor) while a handler reads
-- it, writes it, or while the accept thread waits. (Lua code runs on one OS thread, so
-- "another thread" is another loop thread.) Each waiter wakes exactly once with
-- nil, 'closed' (a reader's buffered half line is dropped with the socket); the descriptor numbers freed are reused by new connections that are
-- served correctly (no stale wake-up reaches them); nothing is left registered.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local await = N.await

T.run('a supervisor closes sockets under a server', function()
	local srv, port, handlers = N.recording_server('flood', ('f'):rep(16 * 1024 * 1024))
	-- a reader parked with half a line buffered
	local a = assert(loop.connect('127.0.0.1', port))
	a:settimeout(10)
	assert(a:send('half'))
	await(function() return handlers[1] and handlers[1].skt:dirty() end, 'the half line')
	-- a writer parked in a big send nobody reads
	local b = assert(loop.connect('127.0.0.1', port))
	b:settimeout(10)
	b:setoption('recv-buffer-size', 65536)
	assert(b:send('flood\n'))
	await(function() return handlers[2] end, 'the second handler')
	loop.sleep(0.05) -- let it fill the buffers and park
	T.eq(handlers[2].outcome, nil, 'the writer is parked')
	local fds = {handlers[1].skt:getfd(), handlers[2].skt:getfd()}
	-- the supervisor
	loop.newthread(function()
		handlers[1].skt:close()
		handlers[2].skt:close()
	end)
	await(function() return handlers[1].outcome and handlers[2].outcome end, 'both to wake')
	local o1, o2 = handlers[1].outcome, handlers[2].outcome
	T.eq(o1[1], 'receive', 'the reader woke in receive')
	T.eq(o1[2], 'closed', 'with closed')
	-- close() drops what the socket had buffered (TcpSocket::close clears it): the
	-- application closed it, so the partial result is empty, not the half line.
	T.eq(o1[3], '', 'and an empty partial result')
	T.eq(o2[1], 'send', 'the writer woke in send')
	T.eq(o2[2], 'closed', 'with closed')
	T.ok(type(o2[3]) == 'number' and o2[3] > 0 and o2[3] < 16 * 1024 * 1024, 'and the last index sent')
	T.eq(handlers[1].wakes, 1, 'the reader woke once')
	T.eq(handlers[2].wakes, 2, 'the writer woke once (after its one receive)')
	-- the clients see the close
	local data, err = a:receive('*l')
	T.eq(data, nil, 'client a: no line')
	T.eq(err, 'closed', 'client a: closed')
	a:close()
	b:close()
	-- new connections take the freed descriptors and are served
	local reused = 0
	for i = 1, 4 do
		local c = assert(loop.connect('127.0.0.1', port))
		c:settimeout(10)
		T.ok(N.exchange(c, 'again ' .. i, ('again ' .. i):reverse()), 'a new connection is served')
		local h = handlers[#handlers]
		for _, fd in ipairs(fds) do if h.skt:getfd() == fd then reused = reused + 1 end end
		c:close()
		await(function() return h.outcome end, 'its handler to end')
		T.eq(h.wakes, 2, 'its handler woke once per line and once for the close')
	end
	T.ok(reused > 0, 'a freed descriptor number was reused')
	T.eq(handlers[1].wakes + handlers[2].wakes, 3, 'no stale wake-up reached the closed handlers')
	-- the accept thread, closed from another thread while it waits
	loop.newthread(function() srv:close() end)
	local c, cerr = loop.connect('127.0.0.1', port)
	T.eq(c, nil, 'the closed server accepts nothing')
	T.eq(cerr, 'connection refused', 'connection refused')
end)

N.finish()
