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
--   yield()                      suspend until loop.resume (loop.suspend)
-- A parked thread is resumed with `true` (ready), 'timeout' or 'closed'. Requests have
-- at most three values (a transfer packs its own), so `after` takes fixed parameters:
-- the JIT compiles it, where a vararg `after` ran in the interpreter.

local core = require'socketloop.core'

local create, resume, yield = coroutine.create, coroutine.resume, coroutine.yield
local select, unpack = select, unpack or table.unpack
local traceback = debug.traceback
local settimer, settimer_at, now = core.settimer, core.settimer_at, core.now

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
local deferred, ndeferred = {}, 0  -- threads to resume with 'closed' on the next step
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

local function report(co, err)
	S.report(err, traceback(co, tostring(err)), co)
end

-- Resumes `co` and follows its requests until a thread parks, suspends or ends.
-- Returns what was transferred to S.MAIN, if anything was. The results of the resume go
-- straight into `after`, so the JIT ends a trace at the resume instead of stitching
-- across it: a stitched trace would go round a caller's loop (step, run_deferred) into
-- the next resume, making a new trace for every pass until the JIT flushed them all.
local after
local function run(co, ...)
	local outer = S.thread
	S.thread = co
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
	if req == TRANSFER then
		if a == S.MAIN then return unpack(b, 1, b.n) end
		return run(a, unpack(b, 1, b.n))
	elseif req == SLEEP or req == SLEEP_UNTIL then
		sleepkey = sleepkey - 1
		parked[sleepkey] = co
		npending = npending + 1
		if req == SLEEP then
			settimer(sleepkey, a)
		else
			settimer_at(sleepkey, a)
		end
	elseif req == IDLE then
		nidle = nidle + 1
		idle[nidle] = co
		if a then idle_deadline[co] = now() + a end
	end
end

-- The socket waits (src/lua/scheduler.rs): poll resumes the threads parked on socket keys
-- and hands their other requests to `after`.
local anchors = {}         -- socket key -> thread parked on it (keeps it alive)
local wait, poll, unpark, nwaiting, inloop = core.parking(anchors, S, function(co, ok, req, a, b)
	return after(S.thread, co, ok, req, a, b)
end)
S.wait = wait

-- Resumes the thread parked on plain timer `key` with `how`. `run` is inlined (a call to
-- the vararg `run` is a tail call the interpreter makes, about 70 instructions).
local function wake(key, how)
	local co = parked[key]
	if co then
		parked[key] = nil
		npending = npending - 1
		local outer = S.thread
		S.thread = co
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

function S.newthread(handler, ...)
	if type(handler) ~= 'function' then
		error("bad argument #1 to 'newthread' (function expected, got " .. type(handler) .. ')', 2)
	end
	local co = S.adopt(create(handler))
	run(co, ...)
	return co
end

function S.sleep(seconds)
	if type(seconds) ~= 'number' then
		error("bad argument #1 to 'sleep' (number expected, got " .. type(seconds) .. ')', 2)
	end
	if S.inloop() then
		yield(SLEEP, seconds)
	else
		core.waitfd(nil, false, math.max(seconds, 0))
	end
end

-- Parks the running loop thread until loop.now() reaches `time` (outside a loop thread:
-- sleeps until then). An absolute deadline does not drift by the time spent computing it.
function S.sleep_until(time)
	if type(time) ~= 'number' then
		error("bad argument #1 to 'sleep_until' (number expected, got " .. type(time) .. ')', 2)
	end
	if S.inloop() then
		yield(SLEEP_UNTIL, time)
	else
		core.waitfd(nil, false, math.max(time - now(), 0))
	end
end

function S.suspend()
	local co = S.current()
	if not co then
		error("'suspend' called outside a loop thread", 2)
	end
	suspended[co] = true
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

-- Wakes the threads parked on either direction of a closed socket with 'closed'.
function S.wakeclosed(token)
	for key = token * 2, token * 2 + 1 do
		local co = unpark(key)
		if co then
			ndeferred = ndeferred + 1
			deferred[ndeferred] = co
		end
	end
end

local function run_deferred()
	local list, n = deferred, ndeferred
	deferred, ndeferred = {}, 0
	for i = 1, n do run(list[i], 'closed') end
end

-- Resumes one thread waiting in start(): the one that called it first, but the runner's
-- main chunk (S.main_chunk) last, since its start() stands for the outermost one, which
-- under stock luajit would be running the loop. The others wait until the loop goes idle
-- (or stops) again: the thread resumed may well give it more to do.
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
	return npending > 0 or ndeferred > 0 or nidle > 0 or nwaiting() > 0
end

function S.step(timeout)
	if timeout ~= nil and type(timeout) ~= 'number' then
		error("bad argument #1 to 'step' (number expected, got " .. type(timeout) .. ')', 2)
	end
	if ndeferred > 0 then
		run_deferred()
	end
	if npending == 0 and nwaiting() == 0 then
		if ndeferred > 0 then return true end
		if nidle > 0 then
			run_idle()
			return S.waiting()
		end
		return false
	end
	local wait = ndeferred > 0 and 0 or timeout
	local first = nidle > 0 and next_idle_deadline()
	if first then
		local left = math.max(first - now(), 0)
		if not wait or left < wait then wait = left end
	end
	-- A thread woken here may call step: its poll gets a key list of its own.
	local list = stepping and {} or ready
	local nready, nexpired, signal = poll(wait, list)
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
	if signal then
		S.signal = signal
		S.halt()
	end
	if first then
		run_idle_due()
	end
	return S.waiting()
end

function S.start(timeout)
	if timeout ~= nil and type(timeout) ~= 'number' then
		error("bad argument #1 to 'start' (number expected, got " .. type(timeout) .. ')', 2)
	end
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
	local registrations, timers = core.stats()
	return {
		pending = npending + nwaiting(),
		registrations = registrations,
		timers = timers,
	}
end

return S
