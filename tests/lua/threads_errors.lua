-- Errors in loop threads: each ends its own thread only, goes to loop.onerror with its
-- traceback and thread, and the others keep running; the default handler prints to
-- stderr (checked in a child process running the same interpreter).
local loop = require'socketloop'
local T = require'testlib'
local U = require'threads_util'
local N = require'testnet'
local wait_until = U.wait_until

-- Collects what loop.onerror receives while f runs, then restores the previous handler.
local function catching(f)
	local caught = {}
	local previous = loop.onerror(function(err, trace, thread)
		caught[#caught + 1] = {err = err, trace = trace, thread = thread}
	end)
	T.eq(type(previous), 'function', 'onerror returns the previous handler')
	f(caught)
	local mine = loop.onerror(previous)
	T.eq(type(mine), 'function', 'onerror returns the handler it replaces')
	return caught
end

T.run('a handler that raises ends its connection only', function()
	local errobj = setmetatable({}, {__tostring = function() return 'an error object' end})
	local handlers = {}
	local clients, conns, replies, closed_seen = 20, 3, 0, 0
	local caught = catching(function(caught)
		local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
			handlers[loop.current()] = true
			while true do
				local line = skt:receive('*l')
				if not line then break end
				if line:find('^boom') then error('handler failed on ' .. line) end
				if line == 'object' then error(errobj) end
				assert(skt:send(line:reverse() .. '\n'))
			end
			skt:close()
		end))
		local _, port = server:getsockname()
		local left = clients
		for c = 1, clients do
			loop.newthread(function()
				for k = 1, conns do
					local s = assert(loop.connect('127.0.0.1', port))
					for i = 1, 10 do
						if k == 2 and i == 5 and (c % 2 == 1 or c == 20) then
							-- this connection's handler raises: the server closes it
							assert(s:send(c == 20 and 'object\n' or ('boom %d\n'):format(c)))
							local data, err = s:receive('*l')
							T.eq(data, nil, 'no reply from a failed handler')
							if T.eq(err, 'closed', 'the failed handler closed its client') then
								closed_seen = closed_seen + 1
							end
							break
						end
						local msg = ('client %d conn %d line %d'):format(c, k, i)
						if N.exchange(s, msg, msg:reverse()) then replies = replies + 1 end
					end
					s:close()
				end
				left = left - 1
			end)
		end
		wait_until(function() return left == 0 end, 'the clients')
		server:close()
		wait_until(function() return #caught == 11 end, 'the errors')
	end)
	-- 10 odd clients and client 20 broke one connection each, after 4 good lines
	T.eq(replies, clients * conns * 10 - 11 * 6, 'every other line got its reply')
	T.eq(closed_seen, 11, 'every failed connection was closed')
	T.eq(#caught, 11, 'onerror calls')
	local boom, objects = 0, 0
	for _, e in ipairs(caught) do
		if e.err == errobj then
			objects = objects + 1
			T.ok(e.trace:find('an error object', 1, true), 'the traceback starts with tostring(err)')
		elseif type(e.err) == 'string' and e.err:find('handler failed on boom', 1, true) then
			boom = boom + 1
			T.ok(e.err:find('threads_errors.lua:', 1, true), 'the error has its position: ' .. e.err)
		end
		T.eq(type(e.trace), 'string', 'traceback type')
		T.ok(e.trace:find('stack traceback', 1, true), 'traceback: ' .. tostring(e.trace))
		T.ok(e.trace:find('threads_errors.lua', 1, true), 'the traceback names the handler')
		T.eq(type(e.thread), 'thread', 'thread type')
		T.ok(handlers[e.thread], 'the thread is the handler thread that raised')
		T.eq(coroutine.status(e.thread), 'dead', 'that thread ended')
	end
	T.eq(boom, 10, 'string errors')
	T.eq(objects, 1, 'an error object is passed as is')
end)

T.run('newthread errors', function()
	local later = false
	local caught = catching(function(caught)
		-- raises before its first wait: newthread still returns it
		local early = loop.newthread(function(x) error('early ' .. x) end, 'one')
		T.eq(type(early), 'thread', 'newthread returns a thread that raised at once')
		T.eq(coroutine.status(early), 'dead')
		T.eq(#caught, 1, 'reported before newthread returned')
		T.eq(caught[1] and caught[1].thread, early, 'the thread passed to onerror')
		-- raises after a wait, while another thread goes on
		local late = loop.newthread(function()
			loop.sleep(0.002)
			error('late', 0)
		end)
		loop.newthread(function()
			loop.sleep(0.01)
			later = true
		end)
		wait_until(function() return later end, 'the other thread')
		T.eq(#caught, 2, 'two errors')
		T.eq(caught[2] and caught[2].err, 'late', 'level 0 error as raised')
		T.eq(caught[2] and caught[2].thread, late)
		-- an error in a thread resumed by loop.resume goes to onerror, not to the resumer
		local suspended = loop.newthread(function()
			loop.suspend()
			error('after resume', 0)
		end)
		loop.resume(suspended)
		T.ok(true, 'resume returned to the resumer')
		T.eq(caught[3] and caught[3].err, 'after resume')
		T.eq(caught[3] and caught[3].thread, suspended)
	end)
	T.eq(later, true)
	T.eq(#caught, 3)
	T.ok(caught[1].err:find('early one', 1, true), 'err: ' .. tostring(caught[1].err))
	for _, e in ipairs(caught) do
		T.ok(e.trace:find('stack traceback', 1, true), 'traceback present')
	end
end)

T.run('the default handler prints to stderr', function()
	local stdout, stderr, status = U.child([[
local loop = require'socketloop'
loop.newthread(function() loop.sleep(0.001) error('first failure') end)
loop.newthread(function() loop.sleep(0.005) print('still running') end)
-- a handler set, then the default restored with nil
local mine = function() print('MY HANDLER') end
loop.onerror(mine)
local prev = loop.onerror(nil)
print('previous is mine', prev == mine)
loop.newthread(function() loop.sleep(0.002) error('second failure') end)
-- a handler that fails itself: the default handler reports both
loop.newthread(function()
	loop.sleep(0.003)
	loop.onerror(function() error('handler broke') end)
	error('third failure')
end)
loop.start()
print('loop ended')
]])
	T.eq(status, 0, 'an error in a loop thread does not fail the process')
	T.ok(stdout:find('still running', 1, true), 'the other thread ran: ' .. stdout)
	T.ok(stdout:find('previous is mine\ttrue', 1, true), 'onerror(nil) returned the handler set')
	T.ok(stdout:find('loop ended', 1, true), 'the loop ended: ' .. stdout)
	T.ok(not stdout:find('MY HANDLER', 1, true), 'the replaced handler was not called')
	T.ok(not stdout:find('failure', 1, true), 'no error on stdout')
	local first = stderr:find('first failure', 1, true)
	local second = stderr:find('second failure', 1, true)
	local third = stderr:find('third failure', 1, true)
	T.ok(first and second and third, 'every error on stderr:\n' .. stderr)
	T.ok(first and second and first < second, 'in the order raised')
	local _, traces = stderr:gsub('stack traceback', '')
	T.ok(traces >= 3, 'a traceback for each:\n' .. stderr)
	T.ok(stderr:find('handler broke', 1, true), 'the failure of the handler is reported too')
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
