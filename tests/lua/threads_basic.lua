-- Loop threads: newthread, current, suspend/resume, sleep, now, stats, and which threads
-- the loop keeps alive.
local loop = require'socketloop'
local T = require'testlib'
local U = require'threads_util'
local pack, wait_until = U.pack, U.wait_until

-- The main chunk: a loop thread under the runner, the main thread under luajit.
if T.mode == 'luajit' then
	T.eq(loop.current(), nil, 'current() in the main thread')
else
	T.eq(type(loop.current()), 'thread', 'the runner runs the main chunk in a loop thread')
end

T.run('newthread runs at once until its first wait', function()
	local log = {}
	local inside, args
	local co = loop.newthread(function(...)
		inside = loop.current()
		args = pack(...)
		log[#log + 1] = 'started'
		loop.sleep(0.001)
		log[#log + 1] = 'woke'
	end, 'a', nil, 3, nil)
	T.eq(type(co), 'thread', 'newthread returns the coroutine')
	T.eq(inside, co, 'current() inside the thread is the thread newthread returned')
	T.eq(#log, 1, 'ran until its first wait, no further')
	T.eq(log[1], 'started')
	T.eq(coroutine.status(co), 'suspended', 'parked in its sleep')
	T.eq(args.n, 4, 'argument count, nils included')
	T.eq(args[1], 'a')
	T.eq(args[2], nil)
	T.eq(args[3], 3)
	wait_until(function() return #log == 2 end, 'the sleeper')
	T.eq(log[2], 'woke')
	T.eq(coroutine.status(co), 'dead', 'ended after its sleep')

	-- a handler that never waits has ended when newthread returns
	local ran = 0
	local quick = loop.newthread(function(n) ran = ran + n return 'ignored' end, 5)
	T.eq(ran, 5, 'a handler that never waits ran to its end')
	T.eq(coroutine.status(quick), 'dead')

	-- newthread inside a loop thread runs the new thread at once as well
	local order = {}
	loop.newthread(function()
		order[#order + 1] = 'outer'
		loop.newthread(function()
			order[#order + 1] = 'inner'
			loop.sleep(0.001)
			order[#order + 1] = 'inner woke'
		end)
		order[#order + 1] = 'outer again'
	end)
	T.eq(table.concat(order, ','), 'outer,inner,outer again', 'nested newthread order')
	wait_until(function() return #order == 4 end, 'the inner thread')
end)

T.run('current', function()
	local me = loop.current()
	T.eq(type(me), 'thread', 'current() in a loop thread')
	T.eq(me, coroutine.running(), 'current() is the running coroutine')
	-- a plain coroutine inside a loop thread is not a loop thread
	local plain = coroutine.wrap(function() return loop.current(), 1 end)
	local c, one = plain()
	T.eq(c, nil, 'current() in a coroutine the loop did not make')
	T.eq(one, 1)
	T.eq(loop.current(), me, 'current() unchanged after the plain coroutine')
end)

T.run('suspend and resume pass values', function()
	local first, second, finished
	local co = loop.newthread(function(x)
		first = pack(loop.suspend())
		second = pack(loop.suspend())
		loop.sleep(0.001)
		finished = x
	end, 'x')
	T.eq(coroutine.status(co), 'suspended', 'suspended at once')
	T.eq(first, nil, 'suspend has not returned yet')
	loop.resume(co, 1, nil, 'three')
	T.ok(first and first.n == 3, 'suspend returned three values')
	T.eq(first and first[1], 1)
	T.eq(first and first[2], nil)
	T.eq(first and first[3], 'three')
	T.eq(second, nil, 'resume ran the thread until it suspended again')
	loop.resume(co)
	T.eq(second and second.n, 0, 'resume with no values')
	-- now it sleeps: it is not suspended by loop.suspend
	T.raises("'resume'", function() loop.resume(co) end)
	wait_until(function() return finished end, 'the thread to end')
	T.eq(finished, 'x')
	T.raises("'resume'", function() loop.resume(co) end) -- dead
	T.raises("'resume'", function() loop.resume(loop.current()) end) -- running
	T.raises("'resume'", function() loop.resume(coroutine.create(print)) end) -- not ours

	-- both ways between two loop threads: a request in, a reply back. loop.resume runs
	-- the other thread nested in the caller, so a thread that was just resumed lets its
	-- resumer go back to its suspend (sleep(0)) before resuming it in turn.
	local server
	server = loop.newthread(function()
		while true do
			local client, n = loop.suspend()
			if not client then break end
			loop.sleep(0.001) -- the client is suspended meanwhile
			loop.resume(client, n * 2)
		end
	end)
	local replies = {}
	local client = loop.newthread(function()
		for n = 1, 5 do
			loop.resume(server, loop.current(), n)
			replies[#replies + 1] = loop.suspend()
			loop.sleep(0)
		end
		loop.resume(server, nil)
	end)
	wait_until(function() return coroutine.status(client) == 'dead' end, 'the client')
	T.eq(table.concat(replies, ','), '2,4,6,8,10', 'replies')
	T.eq(coroutine.status(server), 'dead', 'the server ended')
end)

T.run('sleepers wake in deadline order', function()
	local durations = {0.05, 0.01, 0.03, 0, 0.02, 0.04, -1, 0.015}
	local deadlines, woke, order = {}, {}, {}
	for i, d in ipairs(durations) do
		loop.newthread(function()
			local t0 = loop.now()
			deadlines[i] = t0 + math.max(d, 0)
			loop.sleep(d)
			woke[i] = loop.now()
			order[#order + 1] = i
		end)
	end
	T.eq(#order, 0, 'no sleeper woke before the loop ran')
	wait_until(function() return #order == #durations end, 'all sleepers')
	for i = 1, #durations do
		T.ok(woke[i] and woke[i] >= deadlines[i], 'sleeper ' .. i .. ' woke no earlier than its deadline')
	end
	local expected = {}
	for i = 1, #durations do expected[i] = i end
	table.sort(expected, function(a, b)
		if deadlines[a] ~= deadlines[b] then return deadlines[a] < deadlines[b] end
		return a < b
	end)
	T.eq(table.concat(order, ','), table.concat(expected, ','), 'wake-up order')
	-- with distinct durations 10 ms apart, that is the order of the durations
	T.eq(order[#order], 1, 'the longest sleeper woke last')
end)

T.run('sleep outside a loop thread blocks', function()
	local other = false
	loop.newthread(function()
		loop.sleep(0)
		other = true
	end)
	local plain = coroutine.wrap(function()
		local t0 = loop.now()
		loop.sleep(0.03)
		return loop.now() - t0, loop.current()
	end)
	local dt, cur = plain()
	T.eq(cur, nil, 'the plain coroutine is not a loop thread')
	T.ok(dt >= 0.03, 'the blocking sleep lasted its time, got ' .. dt)
	T.eq(other, false, 'a blocking sleep dispatches no loop thread')
	wait_until(function() return other end, 'the other thread')
end)

if T.mode == 'luajit' then
	-- the main thread of a plain script: sleep blocks, and nothing is dispatched
	local t0 = loop.now()
	loop.sleep(0.02)
	T.ok(loop.now() - t0 >= 0.02, 'sleep in the main thread blocks for its time')
end

T.run('now is monotonic', function()
	local prev = loop.now()
	T.eq(type(prev), 'number')
	for _ = 1, 10000 do
		local t = loop.now()
		if not T.ok(t >= prev, 'now() went back') then break end
		prev = t
	end
	local t0 = loop.now()
	loop.sleep(0.02)
	local t1 = loop.now()
	T.ok(t1 - t0 >= 0.02, 'now() advanced by at least the sleep, got ' .. (t1 - t0))
	loop.sleep(0)
	T.ok(loop.now() >= t1, 'sleep(0) returns')
end)

T.run('stats', function()
	local s0 = loop.stats()
	T.eq(type(s0), 'table')
	T.eq(type(s0.pending), 'number')
	T.eq(type(s0.registrations), 'number')
	T.eq(type(s0.timers), 'number')
	local n = 0
	for _ = 1, 3 do
		loop.newthread(function()
			loop.sleep(0.01)
			n = n + 1
		end)
	end
	local s1 = loop.stats()
	T.eq(s1.pending, s0.pending + 3, 'three sleepers parked')
	T.eq(s1.timers, s0.timers + 3, 'three timers')
	T.eq(s1.registrations, s0.registrations, 'no socket yet')
	local a = loop.tcp()
	local b = loop.tcp()
	T.eq(loop.stats().registrations, s0.registrations + 2, 'two sockets registered')
	a:close()
	T.eq(loop.stats().registrations, s0.registrations + 1, 'one closed')
	b:close()
	T.eq(loop.stats().registrations, s0.registrations, 'both closed')
	local server = assert(loop.newserver('127.0.0.1', 0, function() end))
	local s2 = loop.stats()
	T.eq(s2.registrations, s0.registrations + 1, 'the server is registered')
	T.eq(s2.pending, s0.pending + 4, 'its accept thread is parked')
	server:close()
	wait_until(function() return n == 3 end, 'the sleepers')
	local s3 = loop.stats()
	T.eq(s3.pending, s0.pending, 'nothing left parked')
	T.eq(s3.registrations, s0.registrations, 'no registration left')
	T.eq(s3.timers, s0.timers, 'no timer left')
	T.ok(loop.stats() ~= s3, 'a new table each call')
end)

T.run('a waiting thread is kept alive by the loop, a suspended one is not', function()
	local woke = false
	local collected = false
	-- made by a thread that ends, so no stack slot of this one refers to them
	loop.newthread(function()
		loop.newthread(function()
			loop.sleep(0.005)
			woke = true
		end)
		loop.newthread(function()
			local p = newproxy(true)
			getmetatable(p).__gc = function() collected = true end
			loop.suspend()
			T.ok(false, 'the forgotten thread was resumed ' .. tostring(p))
		end)
	end)
	collectgarbage('collect')
	collectgarbage('collect')
	T.eq(collected, true, 'a suspended thread nobody holds is collected')
	wait_until(function() return woke end, 'the sleeper nobody holds')
	T.eq(woke, true, 'a sleeping thread nobody holds still wakes')
end)

T.run('a thread waiting on a socket wakes when another thread closes it', function()
	local server = assert(loop.newserver('127.0.0.1', 0, function(c)
		c:receive('*a') -- until the client goes away
		c:close()
	end))
	local _, port = server:getsockname()
	local s = assert(loop.connect('127.0.0.1', port))
	local base = loop.stats().pending
	local got
	local waiter = loop.newthread(function()
		got = U.pack(s:receive('*l'))
	end)
	T.eq(got, nil, 'the waiter is parked on its receive')
	T.eq(loop.stats().pending, base + 1)
	s:close()
	U.wait_until(function() return got end, 'the waiter')
	T.eq(got and got[1], nil)
	T.eq(got and got[2], 'closed', 'the waiter woke with closed')
	T.eq(coroutine.status(waiter), 'dead')
	server:close()
	U.wait_until(function() return loop.stats().pending == 0 end, 'the server threads')
	T.eq(loop.stats().pending, 0, 'the server threads ended')
end)

-- suspend and resume from the main chunk (the main thread under luajit)
do
	local got
	local co = loop.newthread(function()
		got = pack(loop.suspend())
	end)
	loop.resume(co, 'from', 'main')
	T.eq(got and got.n, 2, 'resume from the main chunk')
	T.eq(got and got[2], 'main')
	T.eq(coroutine.status(co), 'dead')
end

-- Sockets connected to themselves' peers: n client/server pairs on one listener.
local function pairs_of(n)
	local srv = assert(loop.tcp('127.0.0.1', 0))
	assert(srv:listen(n))
	local _, port = srv:getsockname()
	local clients, servers = {}, {}
	for i = 1, n do
		clients[i] = assert(loop.connect('127.0.0.1', port))
		servers[i] = assert(srv:accept())
	end
	srv:close()
	return clients, servers
end

-- One connected pair: client, server side.
local function one_pair()
	local clients, servers = pairs_of(1)
	return clients[1], servers[1]
end

T.run('a thread woken by its socket is the current loop thread; a coroutine inside it is not', function()
	local c, s = one_pair()
	local seen
	local co = loop.newthread(function()
		assert(s:receive('*l'))
		local me = loop.current()
		local inner = coroutine.wrap(function()
			-- Not a loop thread: current() is nil, and a receive with nothing to read
			-- blocks in poll(2) until its timeout instead of parking (which would yield
			-- to coroutine.wrap's caller, with nothing).
			s:settimeout(0.05)
			return 'returned', loop.current(), s:receive('*l')
		end)
		seen = {me = me, inner = {inner()}}
	end)
	assert(c:send('first\n'))
	U.wait_until(function() return seen end, 'the reader')
	T.eq(seen and seen.me, co, 'current() after a wake-up from the poll')
	local inner = seen and seen.inner or {}
	T.eq(inner[1], 'returned', 'the plain coroutine ran to its end')
	T.eq(inner[2], nil, 'current() in a plain coroutine inside it')
	T.eq(inner[3], nil, 'nothing received')
	T.eq(inner[4], 'timeout', 'the receive blocked until its timeout')
	c:close()
	s:close()
end)

T.run('a parked thread that other code resumed is not resumed again by the poll', function()
	local c, s = one_pair()
	local got, stepped
	local co = loop.newthread(function()
		-- Parks on the receive; the misuse below resumes it from there, so its wait
		-- answers nothing and the receive blocks in poll(2) instead, and finds the line.
		got = s:receive('*l')
		-- Still registered as parked on the socket, which more data makes readable: a
		-- step here must not try to resume this thread, which is running it; nor must
		-- closing the socket later try to wake it.
		assert(c:send('more\n'))
		loop.step(0)
		stepped = true
	end)
	assert(c:send('line\n'))
	local ok, err = coroutine.resume(co)
	T.eq(ok, true, 'the foreign resume ran the thread: ' .. tostring(err))
	T.eq(got, 'line', 'its receive got the line')
	T.eq(stepped, true, 'and its step returned')
	c:close()
	s:close()
end)

T.run('a wait left behind by a thread that other code resumed does not make its socket busy', function()
	local c, s = one_pair()
	local first = loop.newthread(function()
		s:settimeout(0.05)
		s:receive('*l')
	end)
	-- The misuse: its wait answers nothing, so its receive blocks in poll(2) until the
	-- timeout, and the thread ends, still registered as parked.
	coroutine.resume(first)
	T.eq(coroutine.status(first), 'dead', 'the first reader ended')
	s:settimeout(10)
	local got
	loop.newthread(function() got = {s:receive('*l')} end)
	assert(c:send('hello\n'))
	U.wait_until(function() return got end, 'the second reader')
	T.eq(got and got[1], 'hello', 'the second reader parked and got the line')
	c:close()
	s:close()
end)

T.run('a step called by a woken thread leaves the outer step its wake-ups', function()
	-- All readers become ready in one poll; the first one woken makes other readers ready
	-- and calls step, whose poll reports those. The outer step must still wake every
	-- reader of its own poll (a shared key list lost them, and they waited for good).
	local n = 8
	local clients, servers = pairs_of(n)
	local xclients, xservers = pairs_of(n)
	local got, xgot, nested = 0, 0, false
	for i = 1, n do
		loop.newthread(function()
			assert(xservers[i]:receive('*l'))
			xgot = xgot + 1
		end)
		loop.newthread(function()
			assert(servers[i]:receive('*l'))
			got = got + 1
			if not nested then
				nested = true
				for j = 1, n do assert(xclients[j]:send('x\n')) end
				loop.step(0)
			end
		end)
	end
	for i = 1, n do assert(clients[i]:send('line\n')) end
	U.wait_until(function() return got == n and xgot == n end, 'the readers')
	T.eq(got, n, 'every reader of the outer poll woke')
	T.eq(xgot, n, 'every reader of the nested poll woke')
	for _, list in ipairs{clients, servers, xclients, xservers} do
		for _, skt in ipairs(list) do skt:close() end
	end
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
