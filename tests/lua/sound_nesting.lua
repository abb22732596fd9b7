-- Finding 8 of issue 12: threads that create threads without yielding, thousands deep,
-- nested resumes on the C stack until the process died. Past loop.MAX_NESTING (S's)
-- starts are put off to the loop's next step: every thread still runs, in order.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'

local DEPTH = 200000

T.run('newthread inside newthread, 20,000 deep', function()
	local ran, order_ok, last = 0, true, DEPTH + 1
	local function spawn(n)
		ran = ran + 1
		if n >= last then order_ok = false end
		last = n
		if n > 0 then loop.newthread(spawn, n - 1) end
	end
	loop.newthread(spawn, DEPTH - 1)
	N.await(function() return ran == DEPTH end, 'every nested thread', 100000, 0)
	T.eq(ran, DEPTH, 'every thread ran')
	T.ok(order_ok, 'each thread ran after its creator')
end)

T.run('the same with loop.coro threads', function()
	local cl = loop.coro
	local ran = 0
	local function spawn(n)
		ran = ran + 1
		if n > 0 then cl.newthread(spawn, n - 1) end
	end
	cl.newthread(spawn, DEPTH - 1)
	N.await(function() return ran == DEPTH end, 'every nested coro thread', 100000, 0)
	T.eq(ran, DEPTH, 'every coro thread ran')
end)

T.run('a deep chain that also does I/O', function()
	local c, s = N.pair()
	local got = {}
	local function spawn(n)
		if n > 0 then
			loop.newthread(spawn, n - 1)
		else
			assert(c:send('deep\n'))
		end
	end
	loop.newthread(spawn, 5000)
	got[1] = s:receive('*l')
	T.eq(got[1], 'deep', 'the deepest thread sent')
	c:close()
	s:close()
end)

-- Outside any loop thread (stock luajit's main chunk): the chain starts at once and the
-- loop finishes it.
do
	local ran = 0
	local function spawn(n)
		ran = ran + 1
		if n > 0 then loop.newthread(spawn, n - 1) end
	end
	loop.newthread(spawn, DEPTH - 1)
	loop.start()
	T.eq(ran, DEPTH, 'every thread ran, from the main chunk')
end

N.finish()
