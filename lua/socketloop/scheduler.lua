-- The scheduler of loop threads: runs coroutines, parks them on wait keys, and turns
-- what the reactor reports (ready keys, expired timers) back into resumed threads.
--
-- A loop thread waiting on a socket calls S.wait(key, timeout), which parks it in the
-- scheduler's Rust half (src/lua/scheduler.rs: the poll resumes such threads itself). For
-- everything else it yields a request to whoever resumed it, which is `run` below or
-- that poll (which hands the request to `after`):
--   yield(SLEEP, seconds)        park on a plain timer
--   yield(SLEEP_UNTIL, time)     the same, until loop.now() reaches `time`
--   yield(IDLE, timeout)         park until the loop has nothing else to do, until
--                                loop.stop(), or until `timeout` seconds have passed
--   yield(TRANSFER, thread, values) hand control to another thread (socketloop.coro),
--                                passing it `values` (a table packed by S.pack)
--   yield()                      suspend until loop.resume (loop.suspend), or park in a
--                                wait list (S.park: queues, semaphores, joins...)
-- A thread parked on a socket is resumed with `true` (ready), 'timeout', 'closed' or the
-- word it was cancelled with; a sleeper with 'timeout', or nil and that word; a thread in
-- a wait list with `true, value` or `false, why`. Wake-ups that do not come from the poll
-- (a closed socket, a queue hand-off, a cancel) go into the run queue, which each step
-- runs before it polls: a waiting thread costs nothing until something wakes it. Requests have
-- at most three values (a transfer packs its own), so `after` takes fixed parameters:
-- the JIT compiles it, where a vararg `after` ran in the interpreter.

local core = require'socketloop.core'
-- The private half of socketloop.core, given to this module's first load only.
local private = select(2, ...)
if type(private) ~= 'table' then
	error('socketloop.scheduler is loaded by socketloop itself, once', 2)
end

local create, resume, yield, status = coroutine.create, coroutine.resume, coroutine.yield, coroutine.status
local select, unpack = select, unpack or table.unpack
local traceback = debug.traceback
local settimer, settimer_at, now = private.settimer, private.settimer_at, core.now

local S = {}

-- The running coroutine, nil in the main thread (whether or not Lua 5.2 compat is on).
local function running()
	local co, ismain = coroutine.running()
	if ismain then return nil end
	return co
end
S.running = running

local SLEEP, SLEEP_UNTIL, IDLE, TRANSFER = {}, {}, {}, {}
S.TRANSFER = TRANSFER

-- The threads a transfer may continue: a coro thread not started yet, or a thread that
-- yielded TRANSFER and has not been transferred to since. A thread parked on a socket, a
-- timer or a wait list is continued by what it waits for, never by a transfer.
local in_transfer = setmetatable({}, {__mode = 'k'})
S.in_transfer = in_transfer

-- The values of a transfer as one table (a TRANSFER request carries them so).
function S.pack(...)
	return {n = select('#', ...), ...}
end
-- Stands for the main (non-coroutine) thread as a transfer target.
S.MAIN = setmetatable({}, {__tostring = function() return 'main thread' end})

local parked = {}          -- plain timer key -> thread (socket keys: src/lua/scheduler.rs)
local npending = 0         -- threads parked on a plain timer
local idle, nidle = {}, 0  -- threads waiting in start() for the loop to go idle
local idle_deadline = {}   -- such a thread -> when its start(timeout) returns
-- The run queue: thread, a, b triples from runq[rhead] to runq[rtail], each to resume
-- with (a, b) on the next step.
local runq, rhead, rtail = {}, 1, 0
local ready = {}           -- the plain timer keys the last poll woke
local stepping = false     -- a step is waking threads (one of them may call step)
local sleepkey = 0         -- plain timer keys count down from -1
local stopping = false
local halting = false      -- S.halt(): ends every start(), nested or not

-- The loop thread `run` is resuming now (false when none): with the thread the poll is
-- resuming (src/lua/scheduler.rs), the threads that are loop threads at this moment. Any
-- other coroutine, such as a plain one inside a loop thread, is not, and a socket call
-- in it blocks instead of parking it.
S.thread = false
local suspended = setmetatable({}, {__mode = 'k'})
local errhandlers = setmetatable({}, {__mode = 'k'})
local sleeping = {}        -- thread parked on a plain timer -> its key (for cancel)
-- When the dispatch began that the running threads were resumed in (loop clock): what a
-- wait records as its start for loop.threads(), so that a wait costs no clock read.
local step_time = now()
local since = setmetatable({}, {__mode = 'k'})  -- thread in a sleep or start() -> step_time then
-- Loop threads ever made here (to tell join's misuse from a thread already joined, and
-- cancel's), one entry each: `true` while one made by newthread or coro.create has not
-- ended, the client asocket while a connection's thread (S.serve) has not, false once it
-- ended. `nalive` counts the unended ones: what a shutdown waits for. A suspended thread
-- nobody holds may be collected unended, so the count may stay above the set's; shutdown's
-- grace bounds what that costs.
local states, nalive = setmetatable({}, {__mode = 'k'}), 0
-- The results of the threads that ended, until they are joined or collected:
-- {n =, true, ...} or {n = 3, false, err, traceback}.
local results = setmetatable({}, {__mode = 'k'})
local joiners = setmetatable({}, {__mode = 'k'})  -- thread -> wait list of its joiners
-- The thread a request asks the scheduler to end (S.ENDED): what a newthread's body
-- returns, with its results packed, so `after` sees them all.
local ENDED = {}

local function default_onerror(err, trace)
	io.stderr:write('socketloop: error in thread: ', trace, '\n')
	io.stderr:flush()
end
S.default_onerror = default_onerror
S.onerror = default_onerror

-- Hands an error raised in thread `co` to its handler (its own, or loop.onerror's).
function S.report(err, trace, co)
	local handler = errhandlers[co] or S.onerror
	local ok, herr = pcall(handler, err, trace, co)
	if not ok then
		default_onerror(err, trace .. '\n(and the error handler failed: ' .. tostring(herr) .. ')')
	end
end

local finish

-- A thread failed: its error is reported with its traceback (a dead thread keeps its
-- frames), a connection's client closed at once, and the thread's end recorded.
local function report(co, err)
	local trace = traceback(co, tostring(err))
	S.report(err, trace, co)
	local client = states[co]
	if client and client ~= true then
		pcall(client.close, client)
	end
	finish(co, {n = 3, false, err, trace})
end

-- Resumes `co` and follows its requests until a thread parks, suspends or ends.
-- Returns what was transferred to S.MAIN, if anything was. The results of the resume go
-- straight into `after`, so the JIT ends a trace at the resume instead of stitching
-- across it: a stitched trace would go round a caller's loop (step, run_deferred) into
-- the next resume, making a new trace for every pass until the JIT flushed them all.
local after

-- loop.warn_slow: resumes longer than slow_limit seconds go to S.slow(co, seconds). Off
-- (false), it costs a test per resume.
local slow_limit = false
local function timed(outer, co, started, ok, req, a, b)
	local took = now() - started
	if slow_limit and took > slow_limit and S.slow then pcall(S.slow, co, took) end
	return after(outer, co, ok, req, a, b)
end

local function run(co, ...)
	local outer = S.thread
	S.thread = co
	if slow_limit then return timed(outer, co, now(), resume(co, ...)) end
	return after(outer, co, resume(co, ...))
end
S.run = run

-- Carries out what `co` asked for when it yielded (or reports its error); `outer` is the
-- loop thread `run` was resuming before. A thread that parked on a socket yielded
-- nothing: nothing to do.
function after(outer, co, ok, req, a, b)
	S.thread = outer
	if not ok then
		return report(co, req)
	end
	if req == ENDED then
		return finish(co, a)
	elseif req == TRANSFER then
		if status(co) == 'suspended' then
			in_transfer[co] = true
		elseif states[co] then
			finish(co, {n = b.n + 1, true, unpack(b, 1, b.n)})
		end
		if a == S.MAIN then return unpack(b, 1, b.n) end
		if not in_transfer[a] then
			-- Only a coro thread that ended gets here (coro.transfer checks its target
			-- before it yields): the thread it returns to waits for something else.
			local err = 'coro thread ended, but the thread it returns to is not waiting in a transfer'
			return S.report(err, traceback(co, err), co)
		end
		in_transfer[a] = nil
		return run(a, unpack(b, 1, b.n))
	elseif req == SLEEP or req == SLEEP_UNTIL then
		sleepkey = sleepkey - 1
		parked[sleepkey] = co
		sleeping[co] = sleepkey
		since[co] = step_time
		npending = npending + 1
		if req == SLEEP then
			settimer(sleepkey, a)
		else
			settimer_at(sleepkey, a)
		end
	elseif req == IDLE then
		nidle = nidle + 1
		idle[nidle] = co
		since[co] = step_time
		if a then idle_deadline[co] = now() + a end
		if S.draining then S.draining() end
	elseif states[co] ~= true and states[co] and status(co) == 'dead' then
		-- A connection's handler returned (S.serve: no body to say so).
		return finish(co, {n = 1, true})
	end
end

-- The socket waits (src/lua/scheduler.rs): poll resumes the threads parked on socket keys
-- and hands their other requests to `after`.
local wait, poll, unpark, nwaiting, inloop, parked_on, slow = private.parking(S, function(co, ok, req, a, b)
	return after(S.thread, co, ok, req, a, b)
end)
S.wait = wait

local expire

-- Resumes the thread parked on plain timer `key` with `how`. `run` is inlined (a call to
-- the vararg `run` is a tail call the interpreter makes, about 70 instructions).
local function wake(key, how)
	local co = parked[key]
	if co then
		parked[key] = nil
		npending = npending - 1
		if type(co) == 'table' then
			return expire(co)
		end
		sleeping[co] = nil
		local outer = S.thread
		S.thread = co
		if slow_limit then return timed(outer, co, now(), resume(co, how)) end
		after(outer, co, resume(co, how))
	end
end

-- Gives loop thread `co` its own error handler (default: loop.onerror's).
function S.adopt(co, onerror)
	errhandlers[co] = onerror
	return co
end

-- The running loop thread, or nil outside one.
function S.current()
	local co = running()
	if co and inloop() then return co end
	return nil
end

function S.inloop()
	return S.current() ~= nil
end

-- Counts `co` among the threads a shutdown waits for, and as joinable.
function S.track(co)
	states[co] = true
	nalive = nalive + 1
	return co
end

-- Records how `co` ended, wakes its joiners, and tells a draining shutdown.
function finish(co, r)
	if states[co] then
		states[co] = false
		nalive = nalive - 1
	end
	local wl = joiners[co]
	joiners[co] = nil
	if wl and wl.n > 0 then
		S.wakeall(wl, true, r)
	else
		results[co] = r
	end
	if S.draining then S.draining() end
end

-- A newthread's body: the handler's results go to `after` packed, whatever their number.
local function body(handler, ...)
	return ENDED, S.pack(true, handler(...))
end

-- A new loop thread running handler(...), not yet started.
function S.create(handler, onerror)
	local co = S.track(create(body))
	errhandlers[co] = onerror
	return co
end

-- How deep new threads may start inside each other. A new thread runs at once, inside
-- its creator's resume: threads that create threads without yielding nest resumes on the
-- C stack, which nothing could catch overflowing. Past this depth a new thread is
-- started by the loop's next step instead.
S.MAX_NESTING = 100
local nesting = 0
local starting, nstarting = {}, 0  -- {thread, packed arguments} to start on the next step

-- Starts a thread made by S.create (with `handler` and the arguments): now, or from the
-- next step when starts are already nested S.MAX_NESTING deep.
function S.start_thread(co, handler, ...)
	if nesting >= S.MAX_NESTING then
		nstarting = nstarting + 1
		starting[nstarting] = {co, S.pack(handler, ...)}
		return
	end
	nesting = nesting + 1
	run(co, handler, ...)
	nesting = nesting - 1
end

-- Starts the threads whose start was put off.
local function run_starting()
	local list, n = starting, nstarting
	starting, nstarting = {}, 0
	local outer = nesting
	nesting = 0 -- started from the loop: no start is nested in another here
	for i = 1, n do
		local t = list[i]
		S.start_thread(t[1], unpack(t[2], 1, t[2].n))
	end
	nesting = outer
end

-- Starts a loop thread running handler(client) for an accepted connection (newserver).
-- The handler is the coroutine's own function, with no frame of ours below it: a thread
-- parked in a receive then fits in LuaJIT's initial coroutine stack (docs/performance.md).
-- If it raises, `after` reports the error from the dead thread and closes `client`.
function S.serve(handler, client)
	local co = create(handler)
	states[co] = client
	nalive = nalive + 1
	S.start_thread(co, client)
	return co
end

function S.newthread(handler, ...)
	if type(handler) ~= 'function' then
		error("bad argument #1 to 'newthread' (function expected, got " .. type(handler) .. ')', 2)
	end
	local co = S.create(handler)
	S.start_thread(co, handler, ...)
	return co
end

-- Checks that argument `n` of `fname` is a number of seconds; NaN is not one (negative
-- ones are: no time).
local function check_seconds(fname, n, value, optional)
	if value == nil and optional then return end
	if type(value) ~= 'number' then
		error(("bad argument #%d to '%s' (number expected, got %s)"):format(n, fname, type(value)), 3)
	elseif value ~= value then
		error(("bad argument #%d to '%s' (number expected, got NaN)"):format(n, fname), 3)
	end
end

-- A number of seconds at argument `n` of `fname`: nil (when `optional`) or a number that
-- is not NaN nor negative (math.huge: no limit).
function S.seconds(fname, n, x, optional)
	if x == nil and optional then return nil end
	if type(x) ~= 'number' then
		error("bad argument #" .. n .. " to '" .. fname .. "' (number expected, got " .. type(x) .. ')', 3)
	end
	if x ~= x or x < 0 then
		error("bad argument #" .. n .. " to '" .. fname .. "' (not a valid number of seconds)", 3)
	end
	if x == math.huge then return nil end
	return x
end

-- Parks the running loop thread on a timer; true when it is due, nil and the word of a
-- cancel when cancelled.
local function sleep_request(req, x)
	local how, why = yield(req, x)
	if how == nil then return nil, why end
	return true
end

function S.sleep(seconds)
	check_seconds('sleep', 1, seconds)
	if S.inloop() then
		return sleep_request(SLEEP, seconds)
	else
		core.waitfd(nil, false, math.max(seconds, 0))
		return true
	end
end

-- Parks the running loop thread until loop.now() reaches `time` (outside a loop thread:
-- sleeps until then). An absolute deadline does not drift by the time spent computing it.
function S.sleep_until(time)
	check_seconds('sleep_until', 1, time)
	if S.inloop() then
		return sleep_request(SLEEP_UNTIL, time)
	else
		core.waitfd(nil, false, math.max(time - now(), 0))
		return true
	end
end

function S.suspend()
	local co = S.current()
	if not co then
		error("'suspend' called outside a loop thread", 2)
	end
	suspended[co] = step_time
	return yield()
end

function S.resume(co, ...)
	if type(co) ~= 'thread' then
		error("bad argument #1 to 'resume' (thread expected, got " .. type(co) .. ')', 2)
	end
	if not suspended[co] then
		error("bad argument #1 to 'resume' (thread is not suspended by loop.suspend)", 2)
	end
	suspended[co] = nil
	run(co, ...)
end

-- Resumes `co` with (a, b) on the next step, before the poll.
local function schedule(co, a, b)
	local t = rtail
	runq[t + 1], runq[t + 2], runq[t + 3] = co, a, b
	rtail = t + 3
end
S.ready = schedule

-- Wakes the threads parked on either direction of a closed socket with 'closed'.
function S.wakeclosed(token)
	for key = token * 2, token * 2 + 1 do
		local co = unpark(key)
		if co then schedule(co, 'closed') end
	end
end

-- Wake-ups one step runs before it polls again, so that threads handing each other work
-- do not keep sockets waiting.
local RUN_BUDGET = 10000

-- Runs the run queue, including what the threads it runs add to it, up to RUN_BUDGET.
local function run_ready()
	local budget = RUN_BUDGET
	while rhead <= rtail and budget > 0 do
		local i = rhead
		local co, a, b = runq[i], runq[i + 1], runq[i + 2]
		runq[i], runq[i + 1], runq[i + 2] = nil, nil, nil
		rhead = i + 3
		budget = budget - 1
		run(co, a, b)
	end
	if rhead > rtail then
		rhead, rtail = 1, 0
	elseif rhead > 3 * RUN_BUDGET then
		-- Left over for the next step: moved down, so the indices stay small.
		local n = 0
		for i = rhead, rtail do
			n = n + 1
			runq[n], runq[i] = runq[i], nil
		end
		rhead, rtail = 1, n
	end
end

---------------------------------------------------------------------------------------
-- Wait lists: threads parked until another thread hands them something (queues,
-- semaphores, events, joins), first come first served. An entry is {co =, v =, wl =,
-- key =}: the thread (false once it left), a value it hands over (a push), its list,
-- and its plain timer key when the wait has a timeout.

local waiting_in = setmetatable({}, {__mode = 'kv'})  -- thread -> its entry

-- A wait list; `kind` names what its threads wait for in loop.threads() ('queue',
-- 'lock', ...).
function S.waitlist(kind)
	return {first = 1, last = 0, n = 0, dead = 0, kind = kind}
end

-- Forgets entry `e`'s timer and where its thread waits.
local function unwait(e)
	waiting_in[e.co] = nil
	local key = e.key
	if key then
		parked[key] = nil
		npending = npending - 1
	end
end

-- Entries taken from their lists, for the next parks (at most FREE_MAX kept).
local free, nfree = {}, 0
local FREE_MAX = 256

-- Parks the running loop thread at the end of `wl` for up to `timeout` seconds (nil: no
-- limit), handing over `value`; returns what wakes it: true, value or false, why.
-- `fname` names the caller in the error raised outside a loop thread.
function S.park(wl, timeout, value, fname)
	local co = running()
	-- S.thread is a loop thread: the C call is for the one the poll resumes.
	if not co or (co ~= S.thread and not inloop()) then
		error("'" .. fname .. "' would wait outside a loop thread (it would block forever)", 3)
	end
	local e
	if nfree > 0 then
		e = free[nfree]
		free[nfree] = nil
		nfree = nfree - 1
		e.co, e.v, e.wl, e.since = co, value, wl, step_time
	else
		e = {co = co, v = value, wl = wl, key = false, since = step_time}
	end
	local last = wl.last + 1
	wl[last] = e
	wl.last, wl.n = last, wl.n + 1
	waiting_in[co] = e
	if timeout then
		sleepkey = sleepkey - 1
		e.key = sleepkey
		parked[sleepkey] = e
		npending = npending + 1
		settimer(sleepkey, timeout)
	end
	return yield()
end

-- Takes the first thread of `wl`, which no longer waits: the thread and the value it
-- handed over; nil if none waits.
local function take(wl)
	local i = wl.first
	while i <= wl.last do
		local e = wl[i]
		wl[i] = nil
		i = i + 1
		if e.co then
			wl.first, wl.n = i, wl.n - 1
			unwait(e)
			if wl.n == 0 then wl.first, wl.last, wl.dead = 1, 0, 0 end
			local co, v = e.co, e.v
			if nfree < FREE_MAX then
				e.co, e.v, e.wl, e.key = false, nil, false, false
				nfree = nfree + 1
				free[nfree] = e
			end
			return co, v
		end
		wl.dead = wl.dead - 1
	end
	wl.first, wl.last, wl.dead = 1, 0, 0
	return nil
end
S.take = take

-- Wakes the first thread of `wl` with (a, b); returns it, nil if none waits.
function S.wakeone(wl, a, b)
	local co = take(wl)
	if co then schedule(co, a, b) end
	return co
end

-- Wakes every thread of `wl` with (a, b).
function S.wakeall(wl, a, b)
	while wl.n > 0 do
		schedule(take(wl), a, b)
	end
end

-- Takes `e`'s thread out of its list (a timeout or a cancel); returns the thread.
local function leave(e)
	local co, wl = e.co, e.wl
	unwait(e)
	e.co = false
	wl.n = wl.n - 1
	wl.dead = wl.dead + 1
	if wl.dead > wl.n + 16 then
		-- Entries that left outnumber the waiting ones: keep the list proportional to
		-- the threads that wait.
		local j = 0
		for i = wl.first, wl.last do
			local x = wl[i]
			wl[i] = nil
			if x.co then
				j = j + 1
				wl[j] = x
			end
		end
		wl.first, wl.last, wl.dead = 1, j, 0
	end
	return co
end

-- A timed wait in a list ran out.
function expire(e)
	e.key = false -- its timer is the one that fired
	local co = leave(e)
	local outer = S.thread
	S.thread = co
	if slow_limit then return timed(outer, co, now(), resume(co, false, 'timeout')) end
	after(outer, co, resume(co, false, 'timeout'))
end

---------------------------------------------------------------------------------------
-- Cancelling: a parked thread is woken with `why` wherever it waits. One that is not
-- parked (running, or in the run queue) gets it at its next wait, when the step before
-- the next poll finds it parked.

local cancels = setmetatable({}, {__mode = 'k'})       -- thread -> why, once
local deadlines = setmetatable({}, {__mode = 'k'})     -- thread -> {why =}, until cleared

-- Wakes `co` with `why` if it is parked; true if it was.
local function interrupt(co, why)
	local e = waiting_in[co]
	if e then
		leave(e)
		schedule(co, false, why)
		return true
	end
	local key = sleeping[co]
	if key then
		sleeping[co] = nil
		parked[key] = nil
		npending = npending - 1
		schedule(co, nil, why)
		return true
	end
	if suspended[co] then
		suspended[co] = nil
		schedule(co, nil, why)
		return true
	end
	for i = 1, nidle do
		if idle[i] == co then
			table.remove(idle, i)
			nidle = nidle - 1
			idle_deadline[co] = nil
			schedule(co, nil, why)
			return true
		end
	end
	local key = parked_on(co)
	if key and unpark(key) == co then
		schedule(co, why)
		return true
	end
	return false
end

-- Cancels `co`'s current or next wait with `why`; false if it has ended.
function S.cancel(co, why)
	if states[co] == nil then
		error("bad argument #1 to 'cancel' (not a loop thread)", 3)
	end
	if status(co) == 'dead' then return false end
	if not interrupt(co, why) then
		cancels[co] = why
	end
	return true
end

-- From now until S.clear_deadline, every wait of `co` is cancelled with deadline.why
-- (loop.timeout's deadline passed). The outermost of nested deadlines stays in force.
function S.deadline_passed(co, deadline)
	if not deadlines[co] then deadlines[co] = deadline end
	S.cancel(co, deadline.why)
end

-- Ends what S.deadline_passed(co, deadline) started, and its cancel if still pending.
function S.clear_deadline(co, deadline)
	if deadlines[co] == deadline then deadlines[co] = nil end
	if cancels[co] == deadline.why then cancels[co] = nil end
end

-- Cancels the waits that cancels and passed deadlines are due for.
local function deliver_cancels()
	for co, why in pairs(cancels) do
		if status(co) == 'dead' or interrupt(co, why) then
			cancels[co] = nil
		end
	end
	for co, deadline in pairs(deadlines) do
		if status(co) == 'dead' then
			deadlines[co] = nil
		else
			interrupt(co, deadline.why)
		end
	end
end

-- The loop threads a shutdown cancels after its grace: every unended one but `except`
-- and those waiting in start().
function S.unended(except)
	local list = {}
	for co, state in pairs(states) do
		if state and co ~= except and status(co) ~= 'dead' then
			local in_start = false
			for i = 1, nidle do
				if idle[i] == co then in_start = true end
			end
			if not in_start then list[#list + 1] = co end
		end
	end
	return list
end

-- How many unended loop threads a shutdown called in `except` waits for.
function S.busy_threads(except)
	local n = nalive - nidle
	if except and states[except] then n = n - 1 end
	return n
end

---------------------------------------------------------------------------------------
-- Joining.

-- Waits for loop thread `co` to end: true, its results... or false, err, traceback.
function S.join(co, timeout)
	if type(co) ~= 'thread' then
		error("bad argument #1 to 'join' (thread expected, got " .. type(co) .. ')', 2)
	end
	timeout = S.seconds('join', 2, timeout, true)
	local r = results[co]
	if r then
		results[co] = nil
		return unpack(r, 1, r.n)
	end
	if states[co] == nil then
		error("bad argument #1 to 'join' (not a loop thread)", 2)
	end
	if status(co) == 'dead' then
		return false, 'already joined'
	end
	if co == running() then
		error("bad argument #1 to 'join' (a thread cannot join itself)", 2)
	end
	if timeout == 0 then return false, 'timeout' end
	local wl = joiners[co]
	if not wl then
		wl = S.waitlist('join')
		joiners[co] = wl
	end
	local ok, got = S.park(wl, timeout, nil, 'join')
	if not ok then return false, got end
	return unpack(got, 1, got.n)
end

-- Resumes one thread waiting in start(): the one that called it first, but the runner's
-- main chunk (S.main_chunk) last, since its start() stands for the outermost one, which
-- under stock luajit would be running the loop. The others wait until the loop goes idle
-- (or stops) again: the thread resumed may well give it more to do.
local deliver_signals

local function run_idle()
	local k = 1
	while k < nidle and idle[k] == S.main_chunk do k = k + 1 end
	local co = table.remove(idle, k)
	nidle = nidle - 1
	idle_deadline[co] = nil
	run(co)
end

-- The earliest deadline of a start(timeout) called in a loop thread, if any.
local function next_idle_deadline()
	local first
	for i = 1, nidle do
		local d = idle_deadline[idle[i]]
		if d and (not first or d < first) then first = d end
	end
	return first
end

-- Resumes the threads whose start(timeout) has timed out.
local function run_idle_due()
	local t, due, j = now(), nil, 0
	for i = 1, nidle do
		local co = idle[i]
		local d = idle_deadline[co]
		if d and d <= t then
			idle_deadline[co] = nil
			due = due or {}
			due[#due + 1] = co
		else
			j = j + 1
			idle[j] = co
		end
	end
	for i = j + 1, nidle do idle[i] = nil end
	nidle = j
	if due then
		for i = 1, #due do run(due[i]) end
	end
end

-- True while some thread waits on a socket, a timer or a deferred wake.
function S.waiting()
	return npending > 0 or rhead <= rtail or nstarting > 0 or nidle > 0 or nwaiting() > 0
end

-- Signals: loop.onsignal's handlers (signal number -> fn), and what the runner does
-- with a signal no handler takes (number -> fn). Either runs in a new loop thread. A
-- signal with neither that the runner catches (SIGINT, SIGTERM) stops the loop: S.signal
-- says which.
S.sighandlers = {}
S.sigdefaults = {}
S.signames = {}
for name, n in pairs(core.SIGNALS) do S.signames[n] = name end

local band, lshift = require'bit'.band, require'bit'.lshift

function deliver_signals(mask)
	for n = 1, 31 do
		if band(mask, lshift(1, n)) ~= 0 then
			local handler = S.sighandlers[n] or S.sigdefaults[n]
			if handler then
				S.newthread(handler, S.signames[n] or n)
			elseif n == core.SIGNALS.INT or n == core.SIGNALS.TERM then
				S.signal = n
				S.halt()
			end
		end
	end
end

function S.step(timeout)
	check_seconds('step', 1, timeout, true)
	if nstarting > 0 then
		run_starting()
	end
	if rhead <= rtail then
		run_ready()
	end
	if next(cancels) ~= nil or next(deadlines) ~= nil then
		deliver_cancels()
	end
	if npending == 0 and nwaiting() == 0 then
		if rhead <= rtail or nstarting > 0 then return true end
		if nidle > 0 and not halting then
			run_idle()
			return S.waiting()
		end
		return false
	end
	local wait = (rhead <= rtail or nstarting > 0) and 0 or timeout
	local first = nidle > 0 and next_idle_deadline()
	if first then
		local left = math.max(first - now(), 0)
		if not wait or left < wait then wait = left end
	end
	-- A thread woken here may call step: its poll gets a key list of its own.
	local list = stepping and {} or ready
	local nready, nexpired, signals, polled_at = poll(wait, list)
	step_time = polled_at or step_time
	if not nready then
		error('socketloop: poll failed: ' .. tostring(nexpired), 2)
	end
	local outer = stepping
	stepping = true
	for i = 1, nready do
		wake(list[i], true)
	end
	for i = nready + 1, nready + nexpired do
		wake(list[i], 'timeout')
	end
	stepping = outer
	if signals then
		deliver_signals(signals)
	end
	if first then
		run_idle_due()
	end
	return S.waiting()
end

function S.start(timeout)
	check_seconds('start', 1, timeout, true)
	if S.inloop() then
		-- Scripts written for stock luajit end with start(): in the runner they run in a
		-- loop thread already, so wait there until the loop has nothing else to do, until
		-- loop.stop() or until the timeout, as the outermost start() would.
		stopping = false
		return yield(IDLE, timeout)
	end
	stopping, halting = false, false
	local deadline = timeout and now() + timeout
	while not halting do
		if stopping then
			-- loop.stop() ends a start() waiting in a loop thread, if there is one (see
			-- run_idle), and this one goes on; otherwise this one.
			if nidle == 0 then break end
			stopping = false
			run_idle()
		else
			local left = deadline and math.max(deadline - now(), 0)
			if not S.step(left) then break end
			if deadline and now() >= deadline then break end
		end
	end
end

function S.stop()
	stopping = true
end

-- Ends the outermost start() after the current dispatch, leaving the threads waiting in
-- nested ones where they are: what a signal does, and the runner when its main chunk fails.
function S.halt()
	stopping, halting = true, true
end

function S.stats()
	local registrations, timers, lookups, resolver_threads, resolver_busy, resolver_queued = core.stats()
	return {
		pending = npending + nwaiting(),
		registrations = registrations,
		timers = timers,
		lookups = lookups,
		resolver_threads = resolver_threads,
		resolver_busy = resolver_busy,
		resolver_queued = resolver_queued,
	}
end

-- Resumes longer than `seconds` (nil: none) go to S.slow(thread, seconds it ran).
function S.set_slow(seconds)
	slow(seconds)
	slow_limit = seconds or false
end

---------------------------------------------------------------------------------------
-- Introspection (loop.threads): what each live loop thread waits on. Not for hot paths:
-- it looks through the scheduler's tables.

-- Whether `co` waits in the run queue (woken, not yet run).
local function queued(co)
	for i = rhead, rtail, 3 do
		if runq[i] == co then return true end
	end
	return false
end

-- What `co` waits on: a table with `state` ('running', 'socket', 'timer', 'suspended',
-- a wait list's kind, 'start', 'ready', 'other') and, as they apply, `key`, `deadline`,
-- `since`.
local function describe(co)
	local st = status(co)
	if st == 'running' or st == 'normal' then
		return {state = 'running'}
	end
	local key, parked_since = parked_on(co)
	if key then
		return {state = 'socket', key = key, since = parked_since}
	end
	local e = waiting_in[co]
	if e and e.co == co then
		return {state = e.wl.kind or 'wait list', since = e.since,
			deadline = e.key and core.timer_deadline(e.key) or nil}
	end
	local k = sleeping[co]
	if k then
		return {state = 'timer', since = since[co], deadline = core.timer_deadline(k)}
	end
	if suspended[co] then
		return {state = 'suspended', since = suspended[co]}
	end
	for i = 1, nidle do
		if idle[i] == co then
			return {state = 'start', since = since[co], deadline = idle_deadline[co]}
		end
	end
	if queued(co) then
		return {state = 'ready'}
	end
	return {state = 'other'}
end

-- Every live loop thread (made by newthread, coro, the runner's main chunk, or parked
-- here), each described by `describe` with `thread` set, in no particular order.
function S.threads()
	local list, seen = {}, {}
	local function add(co)
		if type(co) == 'thread' and not seen[co] and status(co) ~= 'dead' then
			seen[co] = true
			local d = describe(co)
			d.thread = co
			list[#list + 1] = d
		end
	end
	add(running())
	add(S.main_chunk)
	for co, state in pairs(states) do
		if state then add(co) end
	end
	for _, co in pairs(parked) do
		if type(co) == 'table' then add(co.co) else add(co) end
	end
	for i = 1, nidle do add(idle[i]) end
	for i = rhead, rtail, 3 do add(runq[i]) end
	return list
end

return S
