-- Coordination between loop threads: queues, semaphores, locks, events, timers and
-- deadlines, on the scheduler's wait lists (socketloop.scheduler: S.park and the run
-- queue). A thread that waits here is parked: it costs nothing until the push, release,
-- set, timeout or cancel that wakes it. Waits that cannot be satisfied at once raise an
-- error outside a loop thread, where nothing could ever wake them.

-- The scheduler: internal, handed to the loop's modules by src/lua/embedded.rs.
local S = assert(select(2, ...), 'loaded by socketloop itself').scheduler
local now = require'socketloop.core'.now

local park, wakeone, wakeall, take, waitlist = S.park, S.wakeone, S.wakeall, S.take, S.waitlist
local ready, seconds, running = S.ready, S.seconds, S.running
local getmetatable, setmetatable, newproxy = getmetatable, setmetatable, newproxy
local unpack, pack = unpack or table.unpack, S.pack

local M = {}

-- Objects are userdata (newproxy), so that `#q` works on LuaJIT's Lua 5.1, whose tables
-- ignore __len; each has its own metatable, which holds its state.
local function object(class, state)
	local self = newproxy(true)
	local mt = getmetatable(self)
	for k, v in pairs(state) do mt[k] = v end
	mt.__index = class
	mt.__len = class.len
	mt.__tostring = class.__tostring
	return self, mt
end

-- The state of `self`, checked to be a `class` object (the method is `fname`).
local function state(self, class, fname)
	local mt = type(self) == 'userdata' and getmetatable(self)
	if not mt or mt.__index ~= class then
		error("calling '" .. fname .. "' on bad self (" .. class.name .. ' expected)', 3)
	end
	return mt
end

---------------------------------------------------------------------------------------
-- Queues: FIFO, bounded or not. Items are handed over in order: to a waiting pop
-- directly, and from a waiting push into the place a pop frees, so the length never
-- exceeds the capacity and waiters are served first come first served.

local Queue = {name = 'queue'}

function M.queue(capacity)
	if capacity ~= nil then
		if type(capacity) ~= 'number' then
			error("bad argument #1 to 'queue' (number expected, got " .. type(capacity) .. ')', 2)
		end
		if capacity ~= capacity or capacity < 1 or capacity % 1 ~= 0 then
			error("bad argument #1 to 'queue' (capacity must be a whole number >= 1)", 2)
		end
	end
	return (object(Queue, {
		items = {}, head = 1, tail = 0,
		capacity = capacity or math.huge,
		closed = false,
		pops = waitlist('queue'), pushes = waitlist('queue push'),
	}))
end

function Queue.len(self)
	local q = state(self, Queue, 'len')
	return q.tail - q.head + 1
end

function Queue.__tostring(self)
	local q = getmetatable(self)
	return string.format('socketloop queue (%d/%s)%s', q.tail - q.head + 1,
		q.capacity == math.huge and 'unbounded' or tostring(q.capacity), q.closed and ' closed' or '')
end

function Queue.push(self, v, timeout)
	local q = state(self, Queue, 'push')
	if v == nil then
		error("bad argument #1 to 'push' (value expected, got nil)", 2)
	end
	if timeout ~= nil then timeout = seconds('push', 2, timeout) end
	if q.closed then return nil, 'closed' end
	if q.pops.n > 0 then
		-- A pop waits, so the queue is empty: the item goes to it directly.
		wakeone(q.pops, true, v)
		return true
	end
	local tail = q.tail
	if tail - q.head + 1 < q.capacity then
		tail = tail + 1
		q.items[tail] = v
		q.tail = tail
		return true
	end
	if timeout == 0 then return nil, 'timeout' end
	local ok, why = park(q.pushes, timeout, v, 'push')
	if ok then return true end
	return nil, why
end

function Queue.pop(self, timeout)
	local q = state(self, Queue, 'pop')
	if timeout ~= nil then timeout = seconds('pop', 1, timeout) end
	local head = q.head
	if head <= q.tail then
		local items = q.items
		local v = items[head]
		items[head] = nil
		head = head + 1
		if head > q.tail then
			q.head, q.tail = 1, 0
		else
			q.head = head
		end
		-- The place freed goes to the first waiting push.
		if q.pushes.n > 0 then
			local co, pushed = take(q.pushes)
			local tail = q.tail + 1
			items[tail] = pushed
			q.tail = tail
			ready(co, true)
		end
		return v
	end
	if q.closed then return nil, 'closed' end
	if timeout == 0 then return nil, 'timeout' end
	local ok, v = park(q.pops, timeout, nil, 'pop')
	if ok then return v end
	return nil, v
end

-- No more pushes: waiting pushes fail with 'closed', and so do pops once the queue is
-- empty (waiting pops, which only wait on an empty queue, at once).
function Queue.close(self)
	local q = state(self, Queue, 'close')
	if q.closed then return end
	q.closed = true
	wakeall(q.pushes, false, 'closed')
	wakeall(q.pops, false, 'closed')
end

function Queue.isclosed(self)
	return state(self, Queue, 'isclosed').closed
end

---------------------------------------------------------------------------------------
-- Semaphores and locks. A release hands its permit to the first waiting thread, so a
-- thread that arrives later cannot take it first.

local Semaphore = {name = 'semaphore'}

function M.semaphore(n)
	if type(n) ~= 'number' then
		error("bad argument #1 to 'semaphore' (number expected, got " .. type(n) .. ')', 2)
	end
	if n ~= n or n < 0 or n % 1 ~= 0 or n == math.huge then
		error("bad argument #1 to 'semaphore' (count must be a whole number >= 0)", 2)
	end
	return (object(Semaphore, {count = n, waiters = waitlist('semaphore')}))
end

function Semaphore.acquire(self, timeout)
	local s = state(self, Semaphore, 'acquire')
	timeout = seconds('acquire', 1, timeout, true)
	if s.count > 0 then
		s.count = s.count - 1
		return true
	end
	if timeout == 0 then return nil, 'timeout' end
	local ok, why = park(s.waiters, timeout, nil, 'acquire')
	if ok then return true end
	return nil, why
end

function Semaphore.release(self)
	local s = state(self, Semaphore, 'release')
	if not wakeone(s.waiters, true) then
		s.count = s.count + 1
	end
end

-- Permits available now.
function Semaphore.len(self)
	return state(self, Semaphore, 'len').count
end
Semaphore.count = Semaphore.len

function Semaphore.__tostring(self)
	return 'socketloop semaphore (' .. getmetatable(self).count .. ')'
end

local Lock = {name = 'lock'}

function M.lock()
	return (object(Lock, {holder = false, waiters = waitlist('lock')}))
end

-- The thread that calls: a coroutine, or S.MAIN for the main thread.
local function caller()
	return running() or S.MAIN
end

function Lock.acquire(self, timeout)
	local l = state(self, Lock, 'acquire')
	timeout = seconds('acquire', 1, timeout, true)
	local me = caller()
	if not l.holder then
		l.holder = me
		return true
	end
	if l.holder == me then
		error("calling 'acquire' on a lock this thread already holds (it would wait forever)", 2)
	end
	if timeout == 0 then return nil, 'timeout' end
	local ok, why = park(l.waiters, timeout, nil, 'acquire')
	if ok then return true end
	return nil, why
end

function Lock.release(self)
	local l = state(self, Lock, 'release')
	if not l.holder or l.holder ~= caller() then
		error("calling 'release' on a lock this thread does not hold", 2)
	end
	local co = take(l.waiters)
	if co then
		l.holder = co
		ready(co, true)
	else
		l.holder = false
	end
end

-- Whether some thread holds the lock, and which (a thread, or nil for the main thread).
function Lock.held(self)
	local l = state(self, Lock, 'held')
	if l.holder == false then return false end
	return true, l.holder ~= S.MAIN and l.holder or nil
end

function Lock.__tostring(self)
	return 'socketloop lock (' .. (getmetatable(self).holder and 'held' or 'free') .. ')'
end

---------------------------------------------------------------------------------------
-- Events: set() wakes every waiting thread, and waits return at once until clear().

local Event = {name = 'event'}

function M.event()
	return (object(Event, {isset = false, waiters = waitlist('event')}))
end

function Event.wait(self, timeout)
	local ev = state(self, Event, 'wait')
	timeout = seconds('wait', 1, timeout, true)
	if ev.isset then return true end
	if timeout == 0 then return nil, 'timeout' end
	local ok, why = park(ev.waiters, timeout, nil, 'wait')
	if ok then return true end
	return nil, why
end

function Event.set(self)
	local ev = state(self, Event, 'set')
	ev.isset = true
	wakeall(ev.waiters, true)
end

function Event.clear(self)
	state(self, Event, 'clear').isset = false
end

function Event.isset(self)
	return state(self, Event, 'isset').isset
end

function Event.__tostring(self)
	return 'socketloop event (' .. (getmetatable(self).isset and 'set' or 'clear') .. ')'
end

---------------------------------------------------------------------------------------
-- Timers: each runs fn(timer) in a loop thread of its own. A timer waits in a loop
-- thread parked on the loop's timer heap, so a pending timer keeps loop.start() running
-- as a sleeping thread does.

local Timer = {name = 'timer'}
Timer.__index = Timer
local timers = setmetatable({}, {__mode = 'k'})  -- pending timers (shutdown cancels them)

function Timer:cancel()
	if getmetatable(self) ~= Timer then
		error("calling 'cancel' on bad self (timer expected)", 2)
	end
	if self.cancelled or self.done then return false end
	self.cancelled = true
	timers[self] = nil
	if self.waiting then S.cancel(self.thread, 'cancelled') end
	return true
end

function Timer:__tostring()
	return 'socketloop timer (' .. (self.cancelled and 'cancelled' or self.done and 'done' or 'pending') .. ')'
end

local function check_fn(fname, fn)
	if type(fn) ~= 'function' then
		error("bad argument #2 to '" .. fname .. "' (function expected, got " .. type(fn) .. ')', 3)
	end
end

function M.after(delay, fn)
	delay = seconds('after', 1, delay) or math.huge
	check_fn('after', fn)
	local timer = setmetatable({cancelled = false, done = false, waiting = true}, Timer)
	timers[timer] = true
	timer.thread = S.newthread(function()
		local due = S.sleep(delay)
		timer.waiting = false
		timers[timer] = nil
		if not due or timer.cancelled then return end
		timer.done = true
		return fn(timer)
	end)
	return timer
end

-- Runs fn every `interval` seconds, the n-th run due `n * interval` after the call (a
-- slow run or a busy loop does not push the later ones back; runs that could not start
-- in time are skipped, not run in a burst). Each run gets a new loop thread.
function M.every(interval, fn)
	interval = seconds('every', 1, interval)
	if not interval or interval <= 0 then
		error("bad argument #1 to 'every' (interval must be > 0 and finite)", 2)
	end
	check_fn('every', fn)
	local timer = setmetatable({cancelled = false, done = false, waiting = true}, Timer)
	timers[timer] = true
	timer.thread = S.newthread(function()
		local due = now() + interval
		while true do
			if not S.sleep_until(due) or timer.cancelled then break end
			timer.waiting = false
			S.newthread(fn, timer)
			if timer.cancelled then break end
			timer.waiting = true
			local t = now()
			due = due + interval
			if due <= t then
				due = due + math.ceil((t - due) / interval + 1e-9) * interval
				if due <= t then due = due + interval end
			end
		end
		timer.waiting = false
		timers[timer] = nil
	end)
	return timer
end

-- Cancels every pending timer (shutdown).
function M.cancel_timers()
	local list = {}
	for t in pairs(timers) do list[#list + 1] = t end
	for _, t in ipairs(list) do t:cancel() end
end

---------------------------------------------------------------------------------------
-- Cancel and deadlines.

function M.cancel(thread, why)
	if type(thread) ~= 'thread' then
		error("bad argument #1 to 'cancel' (thread expected, got " .. type(thread) .. ')', 2)
	end
	if why ~= nil and type(why) ~= 'string' then
		error("bad argument #2 to 'cancel' (string expected, got " .. type(why) .. ')', 2)
	end
	return S.cancel(thread, why or 'cancelled')
end

-- Runs fn(...) in the running loop thread; if it has not returned after `limit`
-- seconds, its wait then and every wait after it until it returns end with 'timeout'
-- (a socket call returns nil, 'timeout'). Returns what fn returns; its errors propagate.
function M.timeout(limit, fn, ...)
	limit = seconds('timeout', 1, limit) or math.huge
	if type(fn) ~= 'function' then
		error("bad argument #2 to 'timeout' (function expected, got " .. type(fn) .. ')', 2)
	end
	local co = S.current()
	if not co then
		error("'timeout' called outside a loop thread", 2)
	end
	local passed = false
	local deadline = {why = 'timeout'}
	local timer = M.after(limit, function()
		passed = true
		S.deadline_passed(co, deadline)
	end)
	local r = pack(pcall(fn, ...))
	timer:cancel()
	if passed then S.clear_deadline(co, deadline) end
	if not r[1] then error(r[2], 0) end
	return unpack(r, 2, r.n)
end

---------------------------------------------------------------------------------------
-- Signals and shutdown.

local core = require'socketloop.core'
local A = require'socketloop.asocket'

function M.onsignal(name, fn)
	local n = core.SIGNALS[name]
	if not n then
		error("bad argument #1 to 'onsignal' ('INT', 'TERM', 'HUP', 'USR1' or 'USR2' expected, got "
			.. tostring(name) .. ')', 2)
	end
	if fn ~= nil and type(fn) ~= 'function' then
		error("bad argument #2 to 'onsignal' (function expected, got " .. type(fn) .. ')', 2)
	end
	if fn then
		local ok, err = core.catchsignal(n)
		if not ok then error("'onsignal' cannot catch SIG" .. name .. ': ' .. tostring(err), 2) end
	end
	local previous = S.sighandlers[n]
	S.sighandlers[n] = fn
	return previous
end

local shutting_down = false

function M.shuttingdown()
	return shutting_down
end

-- Closes every listening socket. A newserver's connections that the kernel completed
-- already (its backlog) are accepted first and served: their clients saw them
-- accepted. After this, new connections are refused.
local function close_listeners()
	local list = {}
	for s, on_client in pairs(A.listeners) do list[#list + 1] = {s, on_client} end
	for _, l in ipairs(list) do
		local s, on_client = l[1], l[2]
		A.listeners[s] = nil
		if type(on_client) == 'function' then
			local raw = s:getsocket()
			while true do
				local client = raw:accept()
				if type(client) ~= 'userdata' and type(client) ~= 'table' then break end
				on_client(A.wrap(client))
			end
		end
		s:close()
	end
end

local DEFAULT_GRACE = 10

-- The shutdown itself, in the running loop thread; `closed()`, if given, is called once
-- the listening sockets are closed.
local function shutdown_here(grace, closed)
	local me = S.current()
	shutting_down = true
	-- Under the runner, a second SIGINT or SIGTERM now ends the process at once.
	core.armsignals()
	close_listeners()
	if closed then closed() end
	M.cancel_timers()
	local drained = M.event()
	S.draining = function()
		if S.busy_threads(me) <= 0 then drained:set() end
	end
	S.draining()
	local done = drained:wait(grace)
	S.draining = nil
	if done then return true, 0 end
	local n = 0
	for _, co in ipairs(S.unended(me)) do
		if S.cancel(co, 'cancelled') then n = n + 1 end
	end
	S.sleep(0) -- one turn for the cancelled threads to clean up
	return false, n
end

-- Closes every listening socket, lets the other threads run for up to `grace` seconds
-- (default 10) and cancels those still running then. True if every thread ended in
-- time; else false and how many were cancelled. `closed` is for the runner (see
-- shutdown_here).
function M.shutdown(grace, closed)
	if grace == nil then
		grace = DEFAULT_GRACE
	else
		grace = seconds('shutdown', 1, grace)
	end
	if S.current() then return shutdown_here(grace, closed) end
	-- Outside a loop thread: the shutdown runs in one, and the loop until it is over.
	local t = S.newthread(shutdown_here, grace, closed)
	while coroutine.status(t) ~= 'dead' and S.step() do end
	local _, done, n = S.join(t, 0)
	return done, n
end

return M
