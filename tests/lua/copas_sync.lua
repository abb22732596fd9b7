-- copas's helpers on socketloop.copas, as copas documents them: copas.lock (re-entrant,
-- timeouts, destroy), copas.semaphore (multi-resource takes in turn, 'too many',
-- get_wait, destroy), copas.queue (a consumer with workers, nil items, stop/finish,
-- destroy), copas.timer (one-shot, recurring, cancel, re-arm from its callback, errors to
-- its errorhandler).
local T = require'testlib'
package.loaded.copas = require'socketloop.copas'
local copas = require'copas'

copas.loop(function()
	-- lock
	local lock = copas.lock.new(1)
	T.eq(lock:get(), 0, 'free lock: no wait')
	T.eq(lock:get(), 0, 're-entrant')
	local order = {}
	local waiter = copas.addthread(function()
		local waited = lock:get()
		order[#order + 1] = 'waiter got it after ' .. (waited > 0.05 and 'a wait' or 'no wait')
		lock:release()
	end)
	copas.pause(0.1)
	T.ok(lock:release(), 'release once')
	T.ok(lock:release(), 'release twice: free')
	T.eq(lock:release(), nil, 'releasing a lock not held')
	copas.pause(0.01)
	T.eq(order[1], 'waiter got it after a wait', 'the waiter got the lock')
	T.eq(coroutine.status(waiter), 'dead', 'waiter done')

	local strict = copas.lock.new(0.05, true)
	strict:get()
	local none, err, waited = strict:get()
	T.eq(none, nil, 'not re-entrant')
	T.eq(err, 'timeout', 'waiting for itself times out')
	T.ok(waited >= 0.04, 'after the lock timeout')
	local held = copas.lock.new(5)
	held:get()
	local results = {}
	for i = 1, 2 do
		copas.addthread(function()
			results[i] = {held:get()}
		end)
	end
	copas.pause(0.05)
	T.eq(select(2, held:get(0)), nil, 'get(0) by the holder returns at once')
	held:destroy()
	copas.pause(0.01)
	T.eq(results[1][2], 'destroyed', 'waiter 1 told destroyed')
	T.eq(results[2][2], 'destroyed', 'waiter 2 told destroyed')
	T.eq(select(2, held:get()), 'destroyed', 'a destroyed lock stays so')

	-- semaphore
	local sem = copas.semaphore.new(5, 1, 2)
	T.eq(sem:get_count(), 1, 'start count')
	T.eq(select(2, sem:take(6)), 'too many', 'more than max')
	T.eq(select(2, sem:take(2, 0)), 'timeout', 'timeout 0 does not wait')
	local got = {}
	local function taker(n, name)
		local ok = sem:take(n)
		got[#got + 1] = name .. ':' .. tostring(ok)
	end
	copas.addthread(taker, 3, 'three')
	copas.addthread(taker, 1, 'one')
	copas.pause(0.01)
	T.eq(sem:get_wait(), 3, 'waiting for 4, 1 there')
	sem:give(1)
	copas.pause(0.01)
	T.eq(#got, 0, 'the first in line needs 3: nobody served yet')
	sem:give(2)
	copas.pause(0.01)
	T.eq(table.concat(got, ','), 'three:true,one:true', 'served in turn')
	T.eq(select(2, sem:give(10)), 'too many', 'capped at max')
	T.eq(sem:get_count(), 5, 'full')
	local empty = copas.semaphore.new(1, 0, math.huge)
	local released
	copas.addthread(function() released = {empty:take()} end)
	copas.pause(0.01)
	empty:destroy()
	copas.pause(0.01)
	T.eq(released[2], 'destroyed', 'destroy wakes takers')
	local short = copas.semaphore.new(1, 0, 0.05)
	T.eq(select(2, short:take()), 'timeout', 'default timeout')

	-- queue: a consumer with two workers
	local q = copas.queue.new{name = 'jobs'}
	local handled = {}
	q:add_worker(function(item) copas.pause(0.01); handled[#handled + 1] = tostring(item) end)
	q:add_worker(function(item) copas.pause(0.01); handled[#handled + 1] = tostring(item) end)
	T.eq(#q:get_workers(), 2, 'two workers')
	for i = 1, 5 do q:push(i) end
	q:push(nil)
	T.eq(q:get_size(), 6, 'six queued')
	T.ok(q:finish(5), 'finish waits for the workers')
	T.eq(#handled, 6, 'every item handled')
	table.sort(handled)
	T.eq(table.concat(handled, ','), '1,2,3,4,5,nil', 'items, nil included')
	T.eq(select(2, q:push(1)), 'destroyed', 'finished queue is destroyed')
	local q2 = copas.queue.new()
	T.ok(q2.name:match('^copas_queue_%d+$'), 'default name')
	T.eq(select(2, q2:pop(0.02)), 'timeout', 'pop times out')
	q2:push('a')
	q2:stop()
	T.eq(select(2, q2:push('b')), 'stopping', 'no push after stop')
	T.eq(q2:pop(), 'a', 'what was there')
	T.eq(select(2, q2:pop()), 'destroyed', 'stopped and empty: destroyed')

	-- timers
	local ticks, oneshot = 0, 0
	local t0 = copas.gettime()
	local rec
	rec = copas.timer.new{delay = 0.02, recurring = true, callback = function(tm, params)
		ticks = ticks + 1
		T.eq(params, 'p', 'params')
		if ticks == 3 then tm:cancel() end
	end, params = 'p'}
	local rearmed = 0
	copas.timer.new{delay = 0.01, callback = function(tm)
		oneshot = oneshot + 1
		rearmed = rearmed + 1
		if rearmed < 2 then tm:arm(0.01) end
	end}
	local cancelled = copas.timer.new{delay = 0.05, callback = function() error('must not run') end}
	T.eq(cancelled:cancel(), cancelled, 'cancel')
	T.eq(select(2, cancelled:cancel()), 'not armed', 'cancel twice')
	local errs = {}
	copas.timer.new{delay = 0.01, recurring = true, name = 'failing',
		errorhandler = function(err, co)
			errs[#errs + 1] = tostring(err):match('tick %d') .. ' in ' .. copas.getthreadname(co)
		end,
		callback = function(tm)
			local n = #errs + 1
			if n == 2 then tm:cancel() end
			error('tick ' .. n)
		end}
	copas.pause(0.3)
	T.eq(ticks, 3, 'recurring timer ran until it cancelled itself')
	T.ok(copas.gettime() - t0 >= 0.06, 'three periods')
	T.eq(oneshot, 2, 'one-shot timer re-armed from its callback')
	T.eq(table.concat(errs, ','), 'tick 1 in failing,tick 2 in failing', 'errors to the errorhandler, timer goes on')
	T.eq(select(2, rec:arm()), nil, 'a cancelled timer can be armed again')
	rec:cancel()
end)
T.finish()
