-- loop.threads(): every live loop thread with what it waits on (a socket with its fd,
-- addresses and direction; a timer with its deadline; suspended; a queue, a lock, a
-- semaphore, an event, a join; start), since when, and its traceback; loop.dump() prints
-- them. loop.stats() counters; loop.warn_slow().
local T = require'testlib'
local loop = require'socketloop'

local function by_thread(list)
	local t = {}
	for _, e in ipairs(list) do t[e.thread] = e end
	return t
end

T.run('threads', function()
	local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
		local line = skt:receive()
		if line then skt:send(line .. '\n') end
		skt:close()
	end))
	local _, port = server:getsockname()
	local client = assert(loop.connect('127.0.0.1', port))
	local reader = loop.newthread(function()
		local line = client:receive()
		return line
	end)
	local sleeper = loop.newthread(function() loop.sleep(30) end)
	local q = loop.queue()
	local popper = loop.newthread(function() return q:pop() end)
	local lock = loop.lock()
	lock:acquire()
	local locker = loop.newthread(function() lock:acquire(20); lock:release() end)
	local sem = loop.semaphore(0)
	local taker = loop.newthread(function() sem:acquire() end)
	local ev = loop.event()
	local eventer = loop.newthread(function() ev:wait() end)
	local suspended = loop.newthread(function() loop.suspend() end)
	local joiner = loop.newthread(function() loop.join(sleeper) end)
	-- A writer blocked on a full send buffer: the server's handler does not read.
	local sink = loop.tcp()
	sink:bind('127.0.0.1', 0)
	sink:listen()
	local _, sinkport = sink:getsockname()
	local writer_conn = assert(loop.connect('127.0.0.1', sinkport))
	local writer = loop.newthread(function()
		local chunk = ('x'):rep(65536)
		while writer_conn:send(chunk) do end
	end)
	loop.sleep(0.05)
	local before = loop.now()
	local list = loop.threads()
	local all = by_thread(list)
	local me = all[loop.current()]
	T.ok(me, 'the running thread is listed')
	T.eq(me and me.state, 'running', 'running')
	T.ok(me and me.traceback:find('introspect_threads.lua', 1, true), 'its traceback')

	local r = all[reader]
	T.eq(r and r.state, 'socket', 'reader waits on a socket')
	T.eq(r and r.direction, 'read', 'to read')
	T.eq(r and r.fd, client:getfd(), 'its fd')
	T.eq(r and r['local'], '127.0.0.1:' .. select(2, client:getsockname()), 'local address')
	T.eq(r and r.peer, '127.0.0.1:' .. port, 'peer address')
	T.ok(r and r.since and r.since <= before and r.waited >= 0.04, 'since when: ' .. tostring(r and r.waited))
	T.ok(r and r.traceback:find('receive', 1, true), 'traceback shows the receive')

	local w = all[writer]
	T.eq(w and w.state, 'socket', 'writer waits on a socket')
	T.eq(w and w.direction, 'write', 'to write')
	T.eq(w and w.fd, writer_conn:getfd(), 'the writer\'s fd')

	local s = all[sleeper]
	T.eq(s and s.state, 'timer', 'sleeper waits on a timer')
	T.ok(s and s.deadline and math.abs(s.deadline - (before + 29.95)) < 1, 'its deadline')
	T.ok(s and s.due_in > 29 and s.due_in <= 30, 'due in about 30 s')

	T.eq(all[popper] and all[popper].state, 'queue', 'queue pop')
	T.eq(all[locker] and all[locker].state, 'lock', 'lock')
	T.ok(all[locker] and all[locker].due_in and all[locker].due_in > 19, 'lock wait has its timeout as deadline')
	T.eq(all[taker] and all[taker].state, 'semaphore', 'semaphore')
	T.eq(all[eventer] and all[eventer].state, 'event', 'event')
	T.eq(all[suspended] and all[suspended].state, 'suspended', 'suspended')
	T.eq(all[joiner] and all[joiner].state, 'join', 'join')
	for _, e in ipairs(list) do
		T.eq(type(e.traceback), 'string', 'every entry has a traceback')
	end

	-- dump: readable, to a file
	local path = os.tmpname()
	loop.dump(path)
	local f = assert(io.open(path))
	local text = f:read('*a')
	f:close()
	os.remove(path)
	T.ok(text:find('loop threads at', 1, true), 'dump header')
	T.ok(text:find('socket read fd ' .. client:getfd(), 1, true), 'dump shows the socket wait')
	T.ok(text:find('timer for', 1, true) and text:find('due in', 1, true), 'dump shows the timer')
	T.ok(text:find('stack traceback', 1, true), 'dump shows tracebacks')
	T.raises("bad argument #1 to 'dump'", loop.dump, 42)

	-- wake everything up and end
	q:push(1)
	lock:release()
	sem:release()
	ev:set()
	loop.resume(suspended)
	loop.cancel(sleeper)
	client:send('bye\n')
	T.eq(loop.join(reader), true, 'reader ended')
	writer_conn:close()
	sink:close()
	server:close()
	loop.sleep(0.05)
	local left = by_thread(loop.threads())
	T.eq(left[reader], nil, 'ended threads are gone')
	T.eq(left[sleeper], nil, 'cancelled sleeper gone')
end)

T.run('counters', function()
	local s0 = loop.stats()
	local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
		while true do
			local line = skt:receive()
			if not line then break end
			skt:send(line .. '\n')
		end
		skt:close()
	end))
	local _, port = server:getsockname()
	for _ = 1, 3 do
		local c = assert(loop.connect('127.0.0.1', port))
		c:send('hello\n')
		T.eq(c:receive(), 'hello', 'echo')
		c:close()
	end
	local c = assert(loop.connect('127.0.0.1', port))
	c:settimeout(0.01)
	local _, err = c:receive()
	T.eq(err, 'timeout', 'a timeout')
	c:close()
	loop.sleep(0.02)
	server:close()
	local s1 = loop.stats()
	T.eq(s1.accepted - s0.accepted, 4, 'accepted')
	T.eq(s1.closed - s0.closed, 8, 'closed: both ends of four connections')
	T.eq(s1.bytes_in - s0.bytes_in, 36, 'bytes in: 6 each way, three times')
	T.eq(s1.bytes_out - s0.bytes_out, 36, 'bytes out')
	T.ok(s1.timers_fired - s0.timers_fired >= 2, 'timers fired (the timeout and the sleep)')
	T.ok(s1.polls > s0.polls, 'polls counted')
	T.ok(s1.wakeups > s0.wakeups, 'wake-ups counted')
	T.ok(s1.wakeups_per_poll > 0, 'wake-ups per poll')
	T.ok(s1.poll_wait >= s0.poll_wait + 0.015, 'poll wait time includes the sleeps')
	T.eq((s1.errors.timeout or 0) - (s0.errors.timeout or 0), 1, 'one timeout error')
	T.ok((s1.errors.closed or 0) - (s0.errors.closed or 0) >= 3, 'closed errors (the handlers\' receives)')
end)

T.run('warn_slow', function()
	local reports = {}
	T.eq(loop.warn_slow(0.05, function(msg, trace, co, took)
		reports[#reports + 1] = {msg = msg, trace = trace, co = co, took = took}
	end), nil, 'no previous threshold')
	local function busy(seconds)
		local t = loop.now()
		while loop.now() - t < seconds do end
	end
	-- a slow first run (resumed from Lua), a slow run after a sleep (a timer wake-up), a
	-- slow run after a socket wait (resumed by the poll), and a quick one
	local slow1 = loop.newthread(function() busy(0.1) end)
	local slow2 = loop.newthread(function() loop.sleep(0.01); busy(0.1) end)
	local a, b = loop.tcp(), nil
	local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
		skt:receive()
		busy(0.1)
		skt:close()
	end))
	local _, port = server:getsockname()
	a:connect('127.0.0.1', port)
	loop.sleep(0.05)
	a:send('go\n')
	local quick = loop.newthread(function() loop.sleep(0.01) end)
	loop.sleep(0.3)
	T.eq(loop.warn_slow(nil), 0.05, 'off; returns the previous threshold')
	local seen = {}
	for _, r in ipairs(reports) do
		seen[r.co] = r
		T.ok(r.took > 0.05, 'reported resumes ran long')
		T.ok(r.msg:find('ran', 1, true) and r.trace:find('stack traceback', 1, true), 'message and traceback')
	end
	T.ok(seen[slow1], 'first run reported')
	T.ok(seen[slow2], 'run after a sleep reported')
	T.eq(seen[quick], nil, 'quick thread not reported')
	T.ok(#reports >= 3, 'the handler run after its socket wait reported too: ' .. #reports)
	local n = #reports
	loop.newthread(function() busy(0.1) end)
	T.eq(#reports, n, 'nothing reported once off')
	T.raises("bad argument #1 to 'warn_slow'", loop.warn_slow, -1)
	T.raises("bad argument #2 to 'warn_slow'", loop.warn_slow, 1, 'x')
	a:close()
	server:close()
	b = nil
end)
T.finish()
