-- loop.onsignal: a handler runs in a loop thread of its own when the process gets the
-- signal (sent here with kill(1) to this process's own PID), and the loop goes on; and
-- loop.shutdown: listening sockets closed at once, threads given their grace, the rest
-- cancelled.
local loop = require'socketloop'
local T = require'testlib'
require'threads_util'

local function mypid()
	local f = assert(io.open('/proc/self/stat'))
	local pid = f:read('*n')
	f:close()
	return pid
end

T.run('onsignal USR1 and USR2 via kill', function()
	local got, threads = {}, {}
	local function handler(name)
		got[#got + 1] = name
		threads[#threads + 1] = loop.current()
	end
	T.eq(loop.onsignal('USR1', handler), nil, 'no previous handler')
	loop.onsignal('USR2', handler)
	local pid = mypid()
	T.eq(os.execute('kill -USR1 ' .. pid), 0, 'kill -USR1')
	for _ = 1, 2000 do
		if #got >= 1 then break end
		loop.sleep(0.005)
	end
	T.eq(got[1], 'USR1', 'the handler ran with the signal name')
	T.ok(threads[1] and threads[1] ~= loop.current(), 'in a loop thread of its own')
	os.execute('kill -USR2 ' .. pid)
	os.execute('kill -USR1 ' .. pid)
	for _ = 1, 2000 do
		if #got >= 3 then break end
		loop.sleep(0.005)
	end
	table.sort(got)
	T.eq(table.concat(got, ' '), 'USR1 USR1 USR2', 'each signal handled, the loop goes on')
	T.eq(loop.onsignal('USR1', nil), handler, 'the previous handler')
	loop.onsignal('USR2', nil)
	T.raises("bad argument #1 to 'onsignal'", loop.onsignal, 'KILL', print)
	T.raises("bad argument #2 to 'onsignal'", loop.onsignal, 'USR1', 1)
end)

T.run('shutdown: listeners closed, threads finish, the rest cancelled', function()
	local during = {}
	local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
		local line = skt:receive('*l')
		loop.sleep(0.02) -- a request under way when the shutdown begins
		during[#during + 1] = loop.shuttingdown()
		skt:send('done ' .. line .. '\n')
		skt:close()
	end))
	local _, port = server:getsockname()
	local c = assert(loop.connect('127.0.0.1', port))
	c:send('a\n')
	-- Connected, not yet accepted by the server's thread when the shutdown begins: served.
	local c2 = assert(loop.connect('127.0.0.1', port))
	c2:send('b\n')
	local stubborn = loop.newthread(function() return loop.sleep(100) end)
	local ticks = 0
	local tm = loop.every(0.001, function() ticks = ticks + 1 end)
	T.eq(loop.shuttingdown(), false)
	local t0 = loop.now()
	local done, n = loop.shutdown(0.2)
	T.eq(done, false, 'a thread outlived the grace') T.eq(n, 1, 'one thread cancelled')
	T.ok(loop.now() - t0 >= 0.2, 'the grace was given')
	T.eq(select(3, loop.join(stubborn)), 'cancelled', 'the thread sees cancelled')
	T.eq(c:receive('*l'), 'done a', 'request under way answered')
	T.eq(c2:receive('*l'), 'done b', 'connection in the backlog answered')
	T.eq(tm:cancel(), false, 'timers cancelled by the shutdown')
	local refused, err = loop.connect('127.0.0.1', port)
	T.eq(refused, nil, 'no new connection') T.eq(err, 'connection refused')
	T.eq(loop.shuttingdown(), true)
	T.eq(#during, 2) T.eq(during[1], true, 'loop.shuttingdown() while it waits')
	c:close() c2:close()
	-- Nothing left running: the shutdown returns as soon as the threads ended.
	local quick = loop.newthread(function() loop.sleep(0.01) end)
	T.eq(loop.shutdown(), true, 'all threads ended in time')
	T.eq(coroutine.status(quick), 'dead')
	T.raises("bad argument #1 to 'shutdown'", loop.shutdown, -1)
end)

T.finish()
