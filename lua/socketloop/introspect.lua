-- Seeing inside a running loop: loop.threads(), loop.dump(), loop.warn_slow() and the
-- counters of loop.stats(). docs/api.md documents them.

local core = require'socketloop.core'
-- The scheduler: internal, handed to the loop's modules by src/lua/embedded.rs.
local S = assert(select(2, ...), 'loaded by socketloop itself').scheduler
local A = require'socketloop.asocket'

local traceback, getinfo, getlocal = debug.traceback, debug.getinfo, debug.getlocal

local M = {}

-- The asocket a thread parked on a socket waits for: the `self` of asocket's `ready`,
-- the function every socket wait goes through but receive's on our sockets
-- (`receive_wait`), found on the thread's stack (so that a wait records nothing).
local function socket_of(co)
	for level = 0, 40 do
		local info = getinfo(co, level, 'f')
		if not info then return nil end
		if info.func == A.ready or info.func == A.receive_wait then
			local name, value = getlocal(co, level, 1)
			if name == 'self' then return value end
			return nil
		end
	end
end

local function address(skt, method)
	local f = skt[method]
	if type(f) ~= 'function' then return nil end
	local ok, ip, port = pcall(f, skt)
	if not ok or not ip then return nil end
	if tostring(ip):find(':', 1, true) then ip = '[' .. ip .. ']' end
	return ip .. ':' .. tostring(port)
end

-- Every live loop thread: {thread =, state =, since =, waited =, traceback =, and for a
-- socket wait fd =, direction =, ['local'] =, peer =, socket =; for a timed wait
-- deadline =, due_in =}.
function M.threads()
	local now = core.now()
	local list = S.threads()
	for _, t in ipairs(list) do
		if t.state == 'socket' then
			t.direction = t.key % 2 == 0 and 'read' or 'write'
			local skt = socket_of(t.thread)
			if skt then
				t.socket = skt
				local ok, fd = pcall(skt.getfd, skt)
				t.fd = ok and fd or nil
				t['local'] = address(skt, 'getsockname')
				t.peer = address(skt, 'getpeername')
			end
		end
		t.key = nil
		if t.since then t.waited = now - t.since end
		if t.deadline then t.due_in = t.deadline - now end
		t.traceback = traceback(t.thread)
	end
	-- Longest waits first; the running thread and the others without a start last.
	table.sort(list, function(a, b)
		if a.since and b.since then return a.since < b.since end
		return a.since ~= nil and b.since == nil
	end)
	return list
end

local function describe(t)
	local parts = {tostring(t.thread), t.state}
	if t.state == 'socket' then
		parts[#parts + 1] = t.direction
		if t.fd then parts[#parts + 1] = 'fd ' .. tostring(t.fd) end
		if t['local'] then parts[#parts + 1] = t['local'] end
		if t.peer then parts[#parts + 1] = 'peer ' .. t.peer end
	end
	if t.waited then parts[#parts + 1] = ('for %.3f s'):format(t.waited) end
	if t.due_in then parts[#parts + 1] = ('due in %.3f s'):format(t.due_in) end
	return table.concat(parts, ' ')
end

-- Writes loop.threads() readably to `file` (a file handle or a path; default stderr).
function M.dump(file)
	local out, close = file or io.stderr, false
	if type(out) == 'string' then
		local f, err = io.open(out, 'a')
		if not f then error("bad argument #1 to 'dump' (" .. tostring(err) .. ')', 2) end
		out, close = f, true
	elseif type(out) ~= 'userdata' and type(out) ~= 'table' or type(out.write) ~= 'function' then
		error("bad argument #1 to 'dump' (file or path expected, got " .. type(out) .. ')', 2)
	end
	local list = M.threads()
	out:write(('socketloop: %d loop threads at %.3f\n'):format(#list, core.now()))
	for _, t in ipairs(list) do
		out:write('\n', describe(t), '\n')
		out:write('\t', (t.traceback:gsub('\n', '\n\t')), '\n')
	end
	if out.flush then out:flush() end
	if close then out:close() end
end

-- The slow-resume warning. handler(message, traceback, thread, seconds); the default
-- hands message and traceback to loop.onerror's handler, as an error in the thread is.
local slow_handler = false

function S.slow(co, took)
	local msg = ('thread %s ran %.3f s in one resume (loop.warn_slow)'):format(tostring(co), took)
	local trace = traceback(co, msg)
	if slow_handler then
		slow_handler(msg, trace, co, took)
	else
		S.onerror(msg, trace, co)
	end
end

-- Reports every resume longer than `seconds` (nil or false: stop reporting) to
-- `handler` (default: loop.onerror's). Returns the previous threshold.
local threshold = false
function M.warn_slow(seconds, handler)
	if seconds ~= nil and seconds ~= false then
		if type(seconds) ~= 'number' then
			error("bad argument #1 to 'warn_slow' (number expected, got " .. type(seconds) .. ')', 2)
		end
		if seconds ~= seconds or seconds < 0 or seconds == math.huge then
			error("bad argument #1 to 'warn_slow' (not a valid number of seconds)", 2)
		end
	else
		seconds = nil
	end
	if handler ~= nil and type(handler) ~= 'function' then
		error("bad argument #2 to 'warn_slow' (function expected, got " .. type(handler) .. ')', 2)
	end
	local previous = threshold
	threshold = seconds or false
	slow_handler = handler or false
	S.set_slow(seconds)
	return previous or nil
end

-- loop.stats(): the scheduler's gauges and the loop's counters.
function M.stats()
	local t = S.stats()
	local c = core.counters()
	for k, v in pairs(c) do t[k] = v end
	t.wakeups_per_poll = c.polls > 0 and c.wakeups / c.polls or 0
	local errors = {}
	for k, v in pairs(A.errors) do errors[k] = v end
	t.errors = errors
	return t
end

return M
