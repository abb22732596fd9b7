-- loop.semaphore, loop.lock, loop.event, loop.join, loop.after and loop.every: hand-overs
-- in arrival order, timeouts on every wait, joins of values, errors and ended threads,
-- timer order and cancel, and the same on loop.coro.
local loop = require'socketloop'
local T = require'testlib'
require'threads_util'

T.run('semaphore: at most n holders, FIFO, timeouts', function()
	local sem = loop.semaphore(3)
	local inside, most, order = 0, 0, {}
	local threads = {}
	for i = 1, 10 do
		threads[i] = loop.newthread(function()
			assert(sem:acquire())
			order[#order + 1] = i
			inside = inside + 1
			if inside > most then most = inside end
			loop.sleep(0.002)
			inside = inside - 1
			sem:release()
		end)
	end
	for i = 1, 10 do loop.join(threads[i]) end
	T.eq(most, 3, 'holders at once')
	T.eq(table.concat(order, ','), '1,2,3,4,5,6,7,8,9,10', 'acquired in arrival order')
	T.eq(sem:count(), 3, 'all permits back')
	local s0 = loop.semaphore(0)
	local t0 = loop.now()
	local ok, err = s0:acquire(0.02)
	T.eq(ok, nil) T.eq(err, 'timeout', 'acquire times out')
	T.ok(loop.now() - t0 >= 0.02, 'acquire waited its timeout')
	T.eq(select(2, s0:acquire(0)), 'timeout')
	local waiter = loop.newthread(function() return s0:acquire() end)
	s0:release()
	T.eq(select(2, loop.join(waiter)), true, 'release wakes a waiter')
	T.eq(s0:count(), 0, 'the permit went to the waiter')
	T.raises("bad argument #1 to 'semaphore'", loop.semaphore, -1)
	T.raises("bad argument #1 to 'semaphore'", loop.semaphore)
	T.raises("bad argument #1 to 'acquire'", s0.acquire, s0, 'x')
end)

T.run('lock: one holder, held(), release by the holder only, timeouts', function()
	local lock = loop.lock()
	T.eq(lock:held(), false)
	local log = {}
	local function worker(name)
		return loop.newthread(function()
			assert(lock:acquire())
			log[#log + 1] = name .. '+'
			loop.sleep(0.002)
			log[#log + 1] = name .. '-'
			lock:release()
		end)
	end
	local a, b, c = worker('a'), worker('b'), worker('c')
	local held, holder = lock:held()
	T.ok(held, 'held while a thread has it') T.eq(holder, a, 'the holder')
	T.raises("calling 'release' on a lock this thread does not hold", lock.release, lock)
	loop.join(a) loop.join(b) loop.join(c)
	T.eq(table.concat(log, ' '), 'a+ a- b+ b- c+ c-', 'never two holders, arrival order')
	T.eq(lock:held(), false, 'free at the end')
	assert(lock:acquire())
	T.raises('already holds', lock.acquire, lock)
	lock:release()
	local keeper = loop.newthread(function() lock:acquire() loop.suspend() lock:release() end)
	local ok, err = lock:acquire(0.01)
	T.eq(ok, nil) T.eq(err, 'timeout', 'acquire times out')
	T.eq(select(2, lock:acquire(0)), 'timeout')
	loop.resume(keeper)
	T.eq(lock:held(), false)
end)

T.run('event: wait, set, clear, isset, timeouts', function()
	local ev = loop.event()
	T.eq(ev:isset(), false)
	local woken = 0
	local threads = {}
	for i = 1, 5 do threads[i] = loop.newthread(function() if ev:wait() then woken = woken + 1 end end) end
	T.eq(woken, 0)
	ev:set()
	for i = 1, 5 do loop.join(threads[i]) end
	T.eq(woken, 5, 'set wakes every waiter')
	T.eq(ev:wait(), true, 'a set event does not wait')
	ev:clear()
	T.eq(ev:isset(), false)
	local ok, err = ev:wait(0.01)
	T.eq(ok, nil) T.eq(err, 'timeout', 'wait times out')
	T.eq(select(2, ev:wait(0)), 'timeout')
end)

T.run('join: values, errors, ended threads, timeouts, misuse', function()
	local t = loop.newthread(function(a, b)
		loop.sleep(0.005)
		return a, nil, b
	end, 'x', 'y')
	local function r(...) return {n = select("#", ...), ...} end
	local got = r(loop.join(t))
	T.eq(got.n, 4, 'all results, nil included') T.eq(got[1], true) T.eq(got[2], 'x')
	T.eq(got[3], nil) T.eq(got[4], 'y')
	-- Ended before the join: results kept.
	local quick = loop.newthread(function() return 42 end)
	T.eq(coroutine.status(quick), 'dead')
	T.eq(select(2, loop.join(quick)), 42, 'join of an ended thread')
	T.eq(select(2, loop.join(quick)), 'already joined', 'results are given once')
	-- Errors.
	local saved = loop.onerror(function() end)
	local bad = loop.newthread(function() loop.sleep(0.001) error({code = 7}) end)
	local ok, err, trace = loop.join(bad)
	T.eq(ok, false) T.eq(type(err), 'table') T.eq(err.code, 7, 'the error value itself')
	T.ok(type(trace) == 'string' and trace:find('traceback', 1, true), 'a traceback')
	local bad2 = loop.newthread(function() error('at once') end)
	ok, err = loop.join(bad2)
	T.eq(ok, false) T.ok(err:find('at once', 1, true), 'error of an ended thread')
	loop.onerror(saved)
	-- Several joiners all get the results.
	local slow = loop.newthread(function() loop.sleep(0.005) return 'r' end)
	local j1 = loop.newthread(function() return loop.join(slow) end)
	local j2 = loop.newthread(function() return loop.join(slow) end)
	T.eq(select(3, loop.join(j1)), 'r') T.eq(select(3, loop.join(j2)), 'r')
	-- Timeout.
	local never = loop.newthread(function() loop.suspend() end)
	ok, err = loop.join(never, 0.01)
	T.eq(ok, false) T.eq(err, 'timeout', 'join times out')
	loop.resume(never)
	T.eq(loop.join(never), true)
	T.raises("bad argument #1 to 'join' (thread expected", loop.join, 1)
	T.raises("bad argument #1 to 'join' (not a loop thread", loop.join, coroutine.create(print))
	T.raises("bad argument #1 to 'join' (a thread cannot join itself", loop.join, loop.current())
	T.raises("bad argument #2 to 'join'", loop.join, never, -1)
end)

T.run('after and every: order, no drift, cancel', function()
	local log = {}
	local t0 = loop.now()
	loop.after(0.03, function() log[#log + 1] = 'c' end)
	loop.after(0.01, function() log[#log + 1] = 'a' end)
	local cancelled = loop.after(0.015, function() log[#log + 1] = 'x' end)
	loop.after(0.02, function(timer) log[#log + 1] = 'b' T.eq(timer:cancel(), false, 'cancel of a running timer') end)
	T.eq(cancelled:cancel(), true, 'cancel of a pending timer')
	T.eq(cancelled:cancel(), false, 'cancel twice')
	local ran_in
	loop.after(0, function() ran_in = loop.current() end)
	loop.sleep(0.05)
	T.eq(table.concat(log), 'abc', 'after: in deadline order, cancelled one skipped')
	T.ok(ran_in and ran_in ~= loop.current(), 'fn runs in a loop thread of its own')
	-- every: the n-th run is due n intervals after the start, whatever the runs cost.
	local times, threads = {}, {}
	local interval = 0.01
	local start = loop.now()
	local tm = loop.every(interval, function(timer)
		times[#times + 1] = loop.now()
		threads[loop.current()] = true
		if #times == 5 then timer:cancel() end
		loop.sleep(interval * 0.6) -- a slow run does not push the next one back
	end)
	loop.sleep(0.1)
	T.eq(#times, 5, 'runs until cancelled from inside')
	for i = 1, #times do
		T.ok(times[i] >= start + i * interval, 'run ' .. i .. ' not early')
	end
	local n = 0
	for _ in pairs(threads) do n = n + 1 end
	T.eq(n, 5, 'each run in its own thread')
	T.eq(tm:cancel(), false)
	local count = 0
	local tm2 = loop.every(0.005, function() count = count + 1 end)
	loop.sleep(0.018)
	T.ok(tm2:cancel(), 'cancel from outside')
	local at = count
	loop.sleep(0.02)
	T.eq(count, at, 'no run after cancel')
	T.ok(loop.now() - t0 < 60)
	T.raises("bad argument #1 to 'every'", loop.every, 0, print)
	T.raises("bad argument #2 to 'after'", loop.after, 1, 'f')
	T.raises("bad argument #1 to 'after'", loop.after, -1, print)
	T.raises("bad argument #1 to 'after'", loop.after, 0 / 0, print)
end)

T.run('on loop.coro', function()
	local cl = loop.coro
	local q = cl.queue(1)
	local ev = cl.event()
	local producer = cl.newthread(function()
		for i = 1, 3 do q:push(i) end
		q:close()
		return 'produced'
	end)
	local sum = 0
	local consumer = cl.newthread(function()
		ev:wait()
		while true do
			local v = q:pop()
			if not v then return sum end
			sum = sum + v
		end
	end)
	cl.after(0.005, function() ev:set() end)
	local ok, total = cl.join(consumer, 5)
	T.eq(ok, true) T.eq(total, 6, 'coro threads hand over through a queue')
	T.eq(select(2, cl.join(producer)), 'produced', 'join of a coro thread')
	local slept = cl.newthread(function() return cl.sleep(10) end)
	cl.cancel(slept)
	T.eq(select(3, cl.join(slept)), 'cancelled', 'cancel of a coro thread')
end)

local function outside()
	local sem, lock, ev = loop.semaphore(0), loop.lock(), loop.event()
	T.raises("'acquire' would wait outside a loop thread", sem.acquire, sem)
	T.raises("'wait' would wait outside a loop thread", ev.wait, ev)
	T.raises("'timeout' called outside a loop thread", loop.timeout, 1, print)
	assert(lock:acquire())
	lock:release()
end
T.run('waits outside a loop thread raise', function()
	coroutine.wrap(outside)()
end)
if T.mode == 'luajit' then outside() end
T.finish()
