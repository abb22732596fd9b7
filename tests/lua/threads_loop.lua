-- Running the loop: start, stop, step, start(timeout), from the main chunk (a loop thread
-- under the runner, the main thread under luajit) and from inside a loop thread.
local loop = require'socketloop'
local T = require'testlib'
require'threads_util'

local function count_steps(timeout, limit)
	local n = 0
	while loop.step(timeout) do
		n = n + 1
		if n >= (limit or 100000) then
			T.ok(false, 'step() kept returning true')
			break
		end
	end
	return n
end

-- step with nothing pending
T.eq(loop.stats().pending, 0, 'nothing pending at first')
T.eq(loop.step(0), false, 'step(0) with nothing pending')
T.eq(loop.step(), false, 'step() with nothing pending returns false at once')
T.eq(loop.step(5), false, 'step(5) with nothing pending returns false at once')

-- step dispatches: a sleeper wakes after some steps, then step says false
do
	local woke = 0
	loop.newthread(function()
		loop.sleep(0.005)
		woke = woke + 1
		loop.sleep(0)
		woke = woke + 1
	end)
	T.eq(loop.step(0), true, 'step(0) while a thread sleeps')
	T.eq(woke, 0, 'step(0) does not wait for the sleeper')
	count_steps(nil)
	T.eq(woke, 2, 'step() ran the sleeper to its end')
	T.eq(loop.step(0), false, 'nothing pending afterwards')
end

-- step with a timeout waits at most that long when nothing becomes ready
do
	local server = assert(loop.newserver('127.0.0.1', 0, function() end))
	T.eq(loop.stats().pending, 1, 'the accept thread is parked')
	local t0 = loop.now()
	T.eq(loop.step(0.02), true, 'step(0.02) with a server listening')
	T.ok(loop.now() - t0 >= 0.015, 'step(0.02) waited for its timeout')
	T.eq(loop.stats().pending, 1, 'the accept thread is still parked')
	server:close()
	count_steps(0)
	T.eq(loop.stats().pending, 0, 'closing the server ended its accept thread')
	T.eq(loop.step(0), false)
end

-- start with nothing pending returns at once
loop.start()
loop.start(10)
T.ok(true, 'start() with nothing pending returned')

-- start runs until no thread waits on anything
do
	local done = 0
	for i = 1, 3 do
		loop.newthread(function()
			loop.sleep(0.002 * i)
			done = done + 1
		end)
	end
	loop.start()
	T.eq(done, 3, 'start() returned after every sleeper woke')
	T.eq(loop.stats().pending, 0)
end

-- stop from inside a thread ends start; the thread stays parked; start goes on later
do
	local log = {}
	loop.newthread(function()
		loop.sleep(0.001)
		log[#log + 1] = 'stopping'
		loop.stop()
		log[#log + 1] = 'stop returned'
		loop.sleep(0.001)
		log[#log + 1] = 'after'
	end)
	loop.start()
	T.eq(table.concat(log, ','), 'stopping,stop returned', 'start() returned at stop()')
	T.eq(loop.stats().pending, 1, 'the stopping thread is still parked')
	loop.start()
	T.eq(table.concat(log, ','), 'stopping,stop returned,after', 'the second start() finished it')
end

-- stop while a server keeps the loop busy: start would never return otherwise
do
	local server = assert(loop.newserver('127.0.0.1', 0, function() end))
	loop.newthread(function()
		loop.sleep(0.005)
		loop.stop()
	end)
	loop.start()
	T.eq(loop.stats().pending, 1, 'stopped with the server still listening')
	server:close()
	loop.start()
	T.eq(loop.stats().pending, 0)
end

-- a stop() before start() does not count
do
	loop.stop()
	local woke = false
	loop.newthread(function()
		loop.sleep(0.002)
		woke = true
	end)
	loop.start()
	T.eq(woke, true, 'start() after an earlier stop() runs until idle')
end

-- start(timeout) returns after its timeout while a server keeps the loop busy
do
	local server = assert(loop.newserver('127.0.0.1', 0, function() end))
	local t0 = loop.now()
	loop.start(0.05)
	T.ok(loop.now() - t0 >= 0.05, 'start(0.05) lasted its timeout')
	T.eq(loop.stats().pending, 1, 'the server still listens')
	-- the loop served meanwhile: a client thread gets its connection accepted
	local accepted = false
	server:close()
	server = assert(loop.newserver('127.0.0.1', 0, function(c)
		accepted = true
		c:close()
	end))
	local _, port = server:getsockname()
	local got
	loop.newthread(function()
		local s = assert(loop.connect('127.0.0.1', port))
		got = {s:receive('*a')}
		s:close()
	end)
	loop.start(0.05)
	T.eq(accepted, true, 'start(timeout) dispatched')
	T.eq(got and got[2], 'closed', 'the client saw the close')
	server:close()
	loop.start()
	T.eq(loop.stats().pending, 0)
end

-- start, stop and start(timeout) called inside a loop thread (as the runner runs every
-- script, and as scripts written for stock luajit end with loop.start())
T.run('start in a loop thread', function()
	-- until idle
	local done = false
	loop.newthread(function()
		loop.sleep(0.005)
		done = true
	end)
	loop.start()
	T.eq(done, true, 'start() in a loop thread returned after the sleeper')

	-- until the timeout
	local server = assert(loop.newserver('127.0.0.1', 0, function() end))
	local t0 = loop.now()
	loop.start(0.05)
	T.ok(loop.now() - t0 >= 0.05, 'start(0.05) in a loop thread lasted its timeout')
	T.eq(loop.stats().pending, 1, 'the server still listens')

	-- until stop
	local stopped = false
	loop.newthread(function()
		loop.sleep(0.005)
		stopped = true
		loop.stop()
	end)
	loop.start()
	T.eq(stopped, true, 'start() in a loop thread returned at stop()')
	server:close()

	-- nested: the innermost start returns first
	local order = {}
	local inner = loop.newthread(function()
		loop.newthread(function()
			loop.sleep(0.005)
			order[#order + 1] = 'sleeper'
		end)
		loop.start()
		order[#order + 1] = 'inner start returned'
	end)
	loop.start()
	order[#order + 1] = 'outer start returned'
	T.eq(table.concat(order, ','), 'sleeper,inner start returned,outer start returned',
		'nested start() calls return innermost first')
	T.eq(coroutine.status(inner), 'dead')
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.eq(loop.step(0), false)
T.finish()
