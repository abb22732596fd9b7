-- settimeout: in a loop thread, receive/send/accept/connect time out with nil, 'timeout'
-- while the other threads keep running; 'b' (each wait) against 't' (the whole call);
-- nil or negative removes the limit; outside a loop thread (a plain coroutine, and the
-- main chunk under stock luajit) the same methods block and honour the timeout.
--
-- A connect that times out deterministically on loopback: a server that listens with a
-- backlog of 1 and never accepts; once its queue is full the kernel drops further SYNs.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local pair, await, ticker = N.pair, N.await, N.ticker

-- Connects to `port` (whose listen queue never drains) until a connect fails; returns
-- its result and the sockets that did connect.
local function connect_until_failure(port, timeout)
	local held = {}
	for _ = 1, 20 do
		local c = loop.tcp()
		c:settimeout(timeout)
		local ok, err = c:connect('127.0.0.1', port)
		if not ok then
			c:close()
			return ok, err, held
		end
		held[#held + 1] = c
	end
	return 'never failed', nil, held
end

local function close_all(list)
	for _, s in ipairs(list) do s:close() end
end

T.run('settimeout returns 1; misuse raises', function()
	local s = loop.tcp()
	T.eq(s:settimeout(1), 1, 'b')
	T.eq(s:settimeout(1, 'b'), 1, "'b'")
	T.eq(s:settimeout(1, 't'), 1, "'t'")
	T.eq(s:settimeout(nil), 1, 'nil')
	T.eq(s:settimeout(-1), 1, 'negative')
	T.raises("bad argument #1 to 'settimeout'", s.settimeout, s, 'soon')
	T.raises("bad argument #2 to 'settimeout'", s.settimeout, s, 1, 'x')
	s:close()
end)

T.run('gettimeout reports each mode; nil or negative clears only its own', function()
	local s = loop.tcp()
	T.eq(select('#', s:gettimeout()), 2, 'two values')
	T.eq(s:gettimeout(), nil, 'no block timeout at first')
	s:settimeout(2)
	s:settimeout(5, 't')
	local b, t = s:gettimeout()
	T.eq(b, 2, 'block')
	T.eq(t, 5, 'total')
	s:settimeout(-1)
	b, t = s:gettimeout()
	T.eq(b, nil, 'block cleared')
	T.eq(t, 5, 'total kept')
	s:settimeout(nil, 'r')
	b, t = s:gettimeout()
	T.eq(b, nil, 'block still cleared')
	T.eq(t, nil, 'total cleared')
	s:close()
end)

T.run('receive timeout in a loop thread does not block the others', function()
	local c, s = pair()
	local tick = ticker()
	s:settimeout(0.05)
	local before = tick.n
	local data, err, partial = s:receive()
	T.eq(data, nil, 'no data')
	T.eq(err, 'timeout', 'receive timed out')
	T.eq(partial, '', 'empty partial')
	T.ok(tick.n > before, 'another thread ran while receive waited')
	-- a count, with some data there
	assert(c:send('ab'))
	before = tick.n
	data, err, partial = s:receive(3)
	T.eq(err, 'timeout', 'count timed out')
	T.eq(partial, 'ab', 'partial')
	T.ok(tick.n > before, 'another thread ran')
	-- the socket still works afterwards
	assert(c:send('line\n'))
	T.eq(s:receive(), 'line', 'receive after a timeout')
	-- zero: never waits
	s:settimeout(0)
	data, err = s:receive()
	T.eq(err, 'timeout', 'timeout 0')
	tick.stop()
	c:close()
	s:close()
end)

T.run('send timeout in a loop thread', function()
	local c, s = pair(true)
	local tick = ticker()
	c:settimeout(0.05)
	local before = tick.n
	local last, err, sent = c:send(('s'):rep(8 * 1024 * 1024))
	T.eq(last, nil, 'send did not finish')
	T.eq(err, 'timeout', 'send timed out')
	T.ok(type(sent) == 'number' and sent > 0, 'some bytes went: ' .. tostring(sent))
	T.ok(tick.n > before, 'another thread ran while send waited')
	tick.stop()
	c:close()
	s:close()
end)

T.run('accept timeout in a loop thread', function()
	local srv = assert(loop.tcp('127.0.0.1', 0))
	assert(srv:listen())
	local tick = ticker()
	srv:settimeout(0.05)
	local before = tick.n
	local c, err = srv:accept()
	T.eq(c, nil, 'nobody connected')
	T.eq(err, 'timeout', 'accept timed out')
	T.ok(tick.n > before, 'another thread ran while accept waited')
	-- accept still works
	local _, port = srv:getsockname()
	local client = assert(loop.connect('127.0.0.1', port))
	local a = srv:accept()
	T.ok(a ~= nil, 'accept after a timeout')
	tick.stop()
	client:close()
	if a then a:close() end
	srv:close()
end)

T.run('connect timeout in a loop thread (full listen queue)', function()
	local srv = assert(loop.tcp('127.0.0.1', 0))
	assert(srv:listen(1))
	local _, port = srv:getsockname()
	local tick = ticker()
	local before = tick.n
	local ok, err, held = connect_until_failure(port, 0.2)
	T.eq(ok, nil, 'a connect failed')
	T.eq(err, 'timeout', 'connect timed out')
	T.ok(#held >= 1, 'the first connects succeeded: ' .. #held)
	T.ok(tick.n > before, 'another thread ran while connect waited')
	-- close from another thread wakes a connecting thread with closed
	local c = loop.tcp()
	c:settimeout(10)
	local res
	loop.newthread(function() res = {c:connect('127.0.0.1', port)} end)
	T.eq(res, nil, 'connect is parked')
	c:close()
	await(function() return res end, 'connect to wake')
	T.eq(res[1], nil, 'no connection')
	T.eq(res[2], 'closed', 'closed wakes connect')
	tick.stop()
	close_all(held)
	srv:close()
end)

T.run("no limit: nil and negative", function()
	local c, s = pair()
	for _, value in ipairs{false, -1} do
		s:settimeout(0.01)
		s:settimeout(value or nil)
		loop.newthread(function()
			loop.sleep(0.05)
			c:send('late\n')
		end)
		local data, err = s:receive()
		T.eq(data, 'late', 'receive waited for the data (timeout ' .. tostring(value or nil) .. ')')
		T.eq(err, nil, 'no error')
	end
	c:close()
	s:close()
end)

-- Sends `n` bytes one at a time, `gap` seconds apart.
local function drip(c, n, gap)
	loop.newthread(function()
		for i = 1, n do
			loop.sleep(gap)
			if not c:send(string.char(64 + i)) then return end
		end
	end)
end

T.run("'t' bounds the whole call, 'b' each wait", function()
	local c, s = pair(true)
	local want = 'ABCDEFGHIJKL'
	-- 12 bytes 0.04 s apart take at least 0.48 s: a total limit of 0.1 s expires first
	s:settimeout(0.1, 't')
	drip(c, #want, 0.04)
	local data, err, partial = s:receive(#want)
	T.eq(data, nil, "'t': no data")
	T.eq(err, 'timeout', "'t': timed out")
	T.ok(type(partial) == 'string' and #partial < #want and want:find(partial, 1, true) == 1,
		"'t': a partial prefix: " .. tostring(partial))
	-- drain what is left of the drip
	s:settimeout(nil, 't')
	T.eq(s:receive(#want, partial), want, 'the rest of the drip (the count includes the partial)')

	-- with each wait bounded by 0.5 s, 0.04 s gaps never reach it
	s:settimeout(0.5, 'b')
	drip(c, #want, 0.04)
	data, err = s:receive(#want)
	T.eq(data, want, "'b': every byte arrived within the per-wait limit")
	T.eq(err, nil, "'b': no error")

	-- 't' also bounds accept and send
	local srv = assert(loop.tcp('127.0.0.1', 0))
	assert(srv:listen())
	srv:settimeout(0.05, 't')
	local a
	a, err = srv:accept()
	T.eq(err, 'timeout', "'t' on accept")
	srv:close()
	c:settimeout(nil)
	c:settimeout(0.05, 't')
	local last
	last, err = c:send(('t'):rep(8 * 1024 * 1024))
	T.eq(err, 'timeout', "'t' on send")
	c:close()
	s:close()
end)

-- Timeouts when the caller is not a loop thread: the calls block (poll) and return
-- nil, 'timeout' when the limit passes.
local function outside_loop_checks(where)
	T.eq(loop.current(), nil, where .. ': not a loop thread')
	local c, s = pair(true)
	s:settimeout(0.05)
	assert(c:send('abc'))
	local data, err, partial = s:receive()
	T.eq(data, nil, where .. ': receive')
	T.eq(err, 'timeout', where .. ': receive timed out')
	T.eq(partial, 'abc', where .. ': partial')
	s:settimeout(nil)
	s:settimeout(0.05, 't')
	data, err = s:receive(5)
	T.eq(err, 'timeout', where .. ": receive timed out ('t')")
	c:settimeout(0.05)
	local last
	last, err = c:send(('o'):rep(8 * 1024 * 1024))
	T.eq(err, 'timeout', where .. ': send timed out')
	c:close()
	s:close()

	local srv = assert(loop.tcp('127.0.0.1', 0))
	assert(srv:listen(1))
	srv:settimeout(0.05)
	local a
	a, err = srv:accept()
	T.eq(a, nil, where .. ': accept')
	T.eq(err, 'timeout', where .. ': accept timed out')
	local _, port = srv:getsockname()
	local ok, held
	ok, err, held = connect_until_failure(port, 0.2)
	T.eq(err, 'timeout', where .. ': connect timed out')
	close_all(held)
	srv:close()

	-- Blocking without a limit: a peer in another process connects, then sends after a
	-- pause, then reads everything we send and answers with its length.
	srv = assert(loop.tcp('127.0.0.1', 0))
	assert(srv:listen())
	_, port = srv:getsockname()
	local peer = io.popen(("luajit -e \"local socket = require'socket' "
		.. "local c = assert(socket.connect('127.0.0.1', %d)) socket.sleep(0.2) "
		.. "assert(c:send('late\\n')) local all = c:receive('*a') "
		.. "c:send(#all .. '\\n') c:close()\""):format(port), 'r')
	srv:settimeout(10) -- limits are only a safety net against a hang
	a, err = srv:accept()
	T.ok(a, where .. ': blocking accept got the peer: ' .. tostring(err))
	if a then
		a:settimeout(10)
		T.eq(a:receive(), 'late', where .. ': blocking receive waited for the data')
		local size = 4 * 1024 * 1024
		T.eq(a:send(('p'):rep(size)), size, where .. ': blocking send while the peer reads')
		a:shutdown('send')
		T.eq(a:receive(), tostring(size), where .. ': the peer got everything')
		a:close()
	end
	peer:read('*a')
	peer:close()
	srv:close()
end

T.run('timeouts outside a loop thread (plain coroutine)', function()
	N.in_plain_coroutine(function() outside_loop_checks('coroutine') end)
end)

if T.mode == 'luajit' then
	T.eq(loop.current(), nil, 'main chunk under luajit')
	outside_loop_checks('main chunk')
end

N.finish()
