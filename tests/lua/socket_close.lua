-- close and shutdown: a close from another thread wakes the threads waiting on the socket
-- (receive, send, accept) with nil, 'closed'; a peer reset gives 'closed' to a reader and
-- a writer; a half-close delivers the data then 'closed' while the other direction still
-- works; writing to a peer that closed (or after shutdown('send')) returns nil, 'closed'
-- and never kills the process with SIGPIPE.
--
-- This script must not load LuaSocket: it ignores SIGPIPE for the whole process, which
-- would hide a send that raises it.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local pair, await, spawn = N.pair, N.await, N.spawn

T.eq(package.loaded['socket.core'], nil, 'LuaSocket is not loaded (SIGPIPE stays fatal)')

T.run('close from another thread wakes a receive', function()
	local c, s = pair()
	local result = spawn(function() return c:receive('*l') end)
	T.eq(result(), nil, 'the reader is parked')
	T.eq(c:close(), 1, 'close returns 1')
	await(result, 'the reader to wake')
	local r = result()
	T.eq(r[1], nil, 'no data')
	T.eq(r[2], 'closed', 'the reader got closed (not timeout)')
	T.eq(c:close(), 1, 'closing again is fine')
	T.eq(c:getfd(), -1, 'no descriptor after close')
	-- the reader parked on a partial line
	c, s = pair()
	assert(c:send('partial'))
	result = spawn(function() return s:receive('*l') end)
	await(function() return s:dirty() end, 'the partial line to be buffered')
	s:close()
	await(result, 'the reader to wake')
	T.eq(result()[2], 'closed', 'closed with a partial line pending')
	c:close()
end)

T.run('close from another thread wakes a send and an accept', function()
	local c, s = pair(true)
	local data = ('z'):rep(8 * 1024 * 1024)
	local result = spawn(function() return c:send(data) end)
	T.eq(result(), nil, 'the writer is parked (nobody reads)')
	c:close()
	await(result, 'the writer to wake')
	local r = result()
	T.eq(r[1], nil, 'send did not complete')
	T.eq(r[2], 'closed', 'the writer got closed')
	T.ok(type(r[3]) == 'number' and r[3] < #data, 'and the last index sent: ' .. tostring(r[3]))
	s:close()

	local srv = assert(loop.tcp('127.0.0.1', 0))
	assert(srv:listen())
	srv:settimeout(10)
	result = spawn(function() return srv:accept() end)
	T.eq(result(), nil, 'accept is parked')
	srv:close()
	await(result, 'accept to wake')
	T.eq(result()[1], nil, 'no client')
	T.eq(result()[2], 'closed', 'accept got closed')
end)

T.run('close wakes a reader and a writer of the same socket', function()
	local c, s = pair(true)
	local reader = spawn(function() return c:receive(10) end)
	local writer = spawn(function() return c:send(('w'):rep(8 * 1024 * 1024)) end)
	T.ok(reader() == nil and writer() == nil, 'both parked')
	c:close()
	await(function() return reader() and writer() end, 'both to wake')
	T.eq(reader()[2], 'closed', 'reader')
	T.eq(writer()[2], 'closed', 'writer')
	s:close()
end)

T.run('peer reset: closed for a reader and a writer', function()
	local c, s = pair(true)
	local reader = spawn(function() return c:receive('*l') end)
	local writer = spawn(function() return c:send(('r'):rep(8 * 1024 * 1024)) end)
	T.ok(reader() == nil and writer() == nil, 'both parked')
	T.eq(s:setoption('linger', {on = true, timeout = 0}), 1, 'linger 0')
	s:close() -- sends RST
	await(function() return reader() and writer() end, 'both to wake')
	local r, w = reader(), writer()
	T.eq(r[1], nil, 'reader: no data')
	T.eq(r[2], 'closed', 'reader: reset reads as closed')
	T.eq(w[1], nil, 'writer: not all sent')
	T.eq(w[2], 'closed', 'writer: reset reads as closed')
	T.ok(type(w[3]) == 'number', 'writer: the last index')
	-- and again, now that the connection is gone
	local _, err = c:receive()
	T.eq(err, 'closed', 'receive after the reset')
	_, err = c:send('more')
	T.eq(err, 'closed', 'send after the reset')
	_, err = c:send('more')
	T.eq(err, 'closed', 'send after the reset, again')
	c:close()

	-- a reset while the reader is not waiting
	c, s = pair()
	s:setoption('linger', {on = true, timeout = 0})
	s:close()
	local data
	data, err = c:receive(5)
	T.eq(data, nil, 'reader after a reset')
	T.eq(err, 'closed', 'reader after a reset: closed')
	c:close()
end)

T.run('half-close: shutdown send', function()
	local c, s = pair()
	assert(c:send('data\nmore'))
	T.eq(c:shutdown('send'), 1, 'shutdown send')
	T.eq(s:receive('*l'), 'data', 'the data before the half-close')
	local data, err, partial = s:receive('*l')
	T.eq(data, nil, 'then no line')
	T.eq(err, 'closed', 'then closed')
	T.eq(partial, 'more', 'with the partial line')
	-- the half-closed side still receives
	T.eq(s:send('reply\n'), 6, 'the other direction still sends')
	T.eq(c:receive('*l'), 'reply', 'the half-closed side still receives')
	-- and writing on the side that shut down its sending fails, without SIGPIPE
	local last
	last, err = c:send('after')
	T.eq(last, nil, 'send after shutdown send')
	T.eq(err, 'closed', 'send after shutdown send: closed')
	s:close()
	T.eq(c:receive('*a'), nil, 'then the peer closed')
	c:close()

	-- '*a' ends at the half-close
	c, s = pair()
	local reader = spawn(function() return s:receive('*a') end)
	assert(c:send('one '))
	assert(c:send('two'))
	c:shutdown('send')
	await(reader, "'*a' to complete")
	T.eq(reader()[1], 'one two', "'*a' up to the half-close")
	s:send('ok\n')
	T.eq(c:receive(), 'ok', 'reply after the half-close')
	c:close()
	s:close()
end)

T.run('shutdown receive and both, misuse', function()
	local c, s = pair()
	T.eq(s:shutdown('receive'), 1, 'shutdown receive')
	local data, err = s:receive()
	T.eq(data, nil, 'receive after shutdown receive')
	T.eq(err, 'closed', 'receive after shutdown receive: closed')
	T.eq(s:send('still\n'), 6, 'sending still works')
	T.eq(c:receive(), 'still', 'peer got it')
	T.eq(c:shutdown(), 1, 'shutdown (both)')
	data, err = s:receive()
	T.eq(err, 'closed', 'peer sees the shutdown')
	T.raises("bad argument #1 to 'shutdown'", s.shutdown, s, 'sideways')
	s:close()
	local ok
	ok, err = s:shutdown()
	T.eq(ok, nil, 'shutdown after close')
	T.eq(err, 'closed', 'shutdown after close: closed')
	c:close()
end)

T.run('a socket left open is closed when collected', function()
	local c, s = pair()
	local before = loop.stats().registrations
	c = nil
	collectgarbage()
	collectgarbage()
	T.eq(loop.stats().registrations, before - 1, 'its registration went with it')
	local data, err = s:receive()
	T.eq(data, nil, 'no data')
	T.eq(err, 'closed', 'the peer sees the connection closed')
	s:close()
end)

T.run('writing to a peer that closed: closed, no SIGPIPE', function()
	local c, s = pair()
	s:close()
	local block = ('x'):rep(1000)
	local last, err, n
	for i = 1, 10000 do
		n = i
		last, err = c:send(block)
		if not last then break end
	end
	T.eq(last, nil, 'sending eventually fails')
	T.eq(err, 'closed', 'with closed (after ' .. n .. ' sends)')
	-- the connection is dead: further sends fail the same way (EPIPE: SIGPIPE if raised)
	for _ = 1, 3 do
		last, err = c:send(block)
		T.eq(err, 'closed', 'send to a dead connection')
	end
	c:close()
end)

T.run('no SIGPIPE outside a loop thread either', function()
	N.in_plain_coroutine(function()
		local c, s = pair()
		s:close()
		local err
		for _ = 1, 10000 do
			local last
			last, err = c:send(('y'):rep(1000))
			if not last then break end
		end
		T.eq(err, 'closed', 'blocking sends to a closed peer')
		local _, err2 = c:send('again')
		T.eq(err2, 'closed', 'and again')
		c:shutdown('send')
		c:close()
	end)
end)

T.run('a second thread waiting on the same direction raises, the first keeps its wait', function()
	local c, s = pair()
	local first = spawn(function() return s:receive('*l') end)
	local ok, err = pcall(s.receive, s, '*l')
	T.ok(not ok and tostring(err):find('already waiting to read', 1, true), 'second reader: ' .. tostring(err))
	c:send('line\n')
	await(function() return first() end, 'the first reader')
	T.eq(first()[1], 'line', 'the first reader got the line')
	c:close()
	s:close()
end)

N.finish()
