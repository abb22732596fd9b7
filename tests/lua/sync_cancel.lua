-- loop.cancel and loop.timeout: a thread parked on a socket, a sleep, a queue, a join or
-- a suspend wakes with nil and the word it was cancelled with, and can clean up; a thread
-- not parked gets it at its next wait; loop.timeout puts a deadline on a whole exchange.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
require'threads_util'

T.run('cancel a thread parked on a socket', function()
	local c, s = N.pair()
	local reader = loop.newthread(function()
		local data, err, partial = s:receive('*l')
		return data, err, partial
	end)
	c:send('part')
	loop.sleep(0.01)
	T.eq(loop.cancel(reader), true, 'cancelled')
	local ok, data, err, partial = loop.join(reader)
	T.ok(ok) T.eq(data, nil) T.eq(err, 'cancelled', 'receive returns cancelled')
	T.eq(partial, 'part', 'with what it had read')
	-- The socket still works, and a wait with no timeout after a cancelled timed wait
	-- is not cut short by the old timeout.
	s:settimeout(0.03)
	local r2 = loop.newthread(function() return s:receive('*l') end)
	loop.cancel(r2, 'stop')
	T.eq(select(3, loop.join(r2)), 'stop', 'cancel with a word of its own')
	s:settimeout(nil)
	local r3 = loop.newthread(function() return s:receive('*l') end)
	loop.sleep(0.06)
	c:send('line\n')
	T.eq(select(2, loop.join(r3)), 'line', 'later wait unaffected')
	-- A writer parked on a full send buffer.
	local c2, s2 = N.pair(true)
	local writer = loop.newthread(function() return c2:send(('x'):rep(8 * 1024 * 1024)) end)
	loop.sleep(0.01)
	loop.cancel(writer)
	local ok2, last, err2 = loop.join(writer)
	T.ok(ok2) T.eq(last, nil) T.eq(err2, 'cancelled', 'send returns cancelled')
	c:close() s:close() c2:close() s2:close()
end)

T.run('cancel a thread parked on a sleep, a queue, a join, a suspend, a start', function()
	local sleeper = loop.newthread(function() return loop.sleep(100) end)
	loop.cancel(sleeper)
	local ok, r, why = loop.join(sleeper)
	T.ok(ok) T.eq(r, nil) T.eq(why, 'cancelled', 'sleep returns nil, cancelled')
	local q = loop.queue(1)
	local popper = loop.newthread(function() return q:pop() end)
	loop.cancel(popper, 'shutting down')
	T.eq(select(3, loop.join(popper)), 'shutting down', 'pop')
	q:push(1)
	local pusher = loop.newthread(function() return q:push(2) end)
	loop.cancel(pusher)
	T.eq(select(3, loop.join(pusher)), 'cancelled', 'push')
	T.eq(#q, 1, 'a cancelled push leaves nothing')
	T.eq(q:pop(), 1)
	T.eq(select(2, q:pop(0)), 'timeout')
	local never = loop.newthread(function() loop.suspend() end)
	local joiner = loop.newthread(function() return loop.join(never) end)
	loop.cancel(joiner)
	T.eq(select(3, loop.join(joiner)), 'cancelled', 'join')
	loop.cancel(never)
	T.eq(loop.join(never), true, 'suspend')
	local starter = loop.newthread(function() return loop.start() end)
	loop.cancel(starter)
	T.eq(select(3, loop.join(starter)), 'cancelled', 'start in a loop thread')
	local gone = loop.newthread(function() end)
	T.eq(loop.cancel(gone), false, 'an ended thread')
	T.raises("bad argument #1 to 'cancel' (thread expected", loop.cancel, nil)
	T.raises("bad argument #1 to 'cancel' (not a loop thread", loop.cancel, coroutine.create(print))
	T.raises("bad argument #2 to 'cancel'", loop.cancel, sleeper, 1)
end)

T.run('cancel of a thread that is not parked: its next wait', function()
	local q = loop.queue()
	local got = {}
	local t = loop.newthread(function()
		got[1] = {q:pop()}
		got[2] = {loop.sleep(100)}
	end)
	q:push('v') -- t is now in the run queue, to receive 'v'
	loop.cancel(t)
	loop.join(t, 5)
	T.eq(got[1][1], 'v', 'the hand-over it was woken for is kept')
	T.eq(got[2][2], 'cancelled', 'its next wait is cancelled')
	local self_cancelled = loop.newthread(function()
		loop.cancel(loop.current())
		return loop.sleep(100)
	end)
	T.eq(select(3, loop.join(self_cancelled, 5)), 'cancelled', 'a thread cancelling itself')
end)

T.run('timeout: a deadline around a whole exchange', function()
	local c, s = N.pair()
	-- The peer answers the first line, then goes silent.
	local peer = loop.newthread(function()
		c:receive('*l')
		c:send('one\n')
	end)
	local steps = {}
	local t0 = loop.now()
	local a, b = loop.timeout(0.05, function(x)
		s:send('ask\n')
		steps[#steps + 1] = s:receive('*l')
		local line, err = s:receive('*l') -- never comes
		steps[#steps + 1] = err
		-- After the deadline every wait ends at once.
		steps[#steps + 1] = select(2, loop.sleep(100))
		local _, qerr = loop.queue():pop()
		steps[#steps + 1] = qerr
		return x, line
	end, 'arg')
	T.ok(loop.now() - t0 >= 0.05, 'not before the deadline')
	T.eq(a, 'arg', 'fn gets its arguments, and its results come back') T.eq(b, nil)
	T.eq(table.concat(steps, ' '), 'one timeout timeout timeout', 'what fn saw')
	T.eq(loop.sleep(0.001), true, 'after it returns, waits are not cancelled any more')
	loop.join(peer)
	-- A fn that ends in time is left alone, and later waits are not cancelled.
	T.eq(loop.timeout(1, function() loop.sleep(0.001) return 'quick' end), 'quick')
	loop.sleep(0.01)
	-- Errors propagate; nested deadlines: the inner one passes, the outer goes on.
	T.raises('oops', loop.timeout, 1, function() error('oops') end)
	local inner_err, outer_ok
	loop.timeout(1, function()
		loop.timeout(0.01, function() inner_err = select(2, loop.sleep(1)) end)
		outer_ok = loop.sleep(0.005)
	end)
	T.eq(inner_err, 'timeout', 'inner deadline') T.eq(outer_ok, true, 'outer deadline still ahead')
	T.raises("bad argument #1 to 'timeout'", loop.timeout, -1, print)
	T.raises("bad argument #2 to 'timeout'", loop.timeout, 1, nil)
	c:close() s:close()
end)

T.finish()
