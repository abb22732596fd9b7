-- No leak: 10,000 connect/close cycles against a local server leave, after a full
-- collection, as many registrations, parked threads and timers as before, and the Lua
-- heap within 1 MB of where it was. Deterministic checks only (counts, not times).
local loop = require'socketloop'
local T = require'testlib'
local U = require'threads_util'

local function collect()
	for _ = 1, 3 do collectgarbage('collect') end
end

-- `cycles` connections from `nthreads` client threads at once; `mode` says who closes:
--   'server': the handler closes at once, the client sees 'closed' and closes;
--   'client': the client sends a line and closes, the handler reads it, sees 'closed';
--   'drop':   the handler closes, the client drops its socket unclosed (the collector
--             closes it).
-- Returns the number of connections the server handled to the end.
local function cycles(port, server_state, mode, count, nthreads)
	local left, started = nthreads, 0
	server_state.mode = mode
	server_state.done = 0
	for _ = 1, nthreads do
		loop.newthread(function()
			while started < count do
				started = started + 1
				local s, err = loop.connect('127.0.0.1', port)
				if not T.ok(s, 'connect: ' .. tostring(err)) then break end
				if mode == 'client' then
					assert(s:send('x\n'))
					s:close()
				else
					local data, rerr = s:receive('*l')
					if data ~= nil or rerr ~= 'closed' then
						T.ok(false, 'expected nil, closed; got ' .. tostring(data) .. ', ' .. tostring(rerr))
					end
					if mode == 'server' then s:close() end
				end
			end
			left = left - 1
		end)
	end
	U.wait_until(function() return left == 0 and server_state.done >= count end,
		mode .. ' cycles', 100000)
	return server_state.done
end

T.run('10,000 connect/close cycles', function()
	local state = {}
	local function handler(c)
		if state.mode == 'client' then
			local line = c:receive('*l')
			local none, err = c:receive('*l')
			if line == 'x' and none == nil and err == 'closed' then
				state.done = state.done + 1
			else
				T.ok(false, 'handler got ' .. tostring(line) .. ', ' .. tostring(err))
			end
		else
			state.done = state.done + 1
		end
		c:close()
	end

	collect()
	local before = loop.stats()
	local server = assert(loop.newserver('127.0.0.1', 0, handler))
	local _, port = server:getsockname()

	-- a warm-up, so lazily grown tables and compiled traces count in the baseline
	cycles(port, state, 'server', 500, 10)
	cycles(port, state, 'client', 100, 10)
	collect()
	local base = loop.stats()
	local mem0 = collectgarbage('count')
	T.eq(base.registrations, before.registrations + 1, 'only the server is registered')

	T.eq(cycles(port, state, 'server', 10000, 10), 10000, 'server-closed cycles handled')
	T.eq(cycles(port, state, 'client', 1000, 10), 1000, 'client-closed cycles handled')
	collect()
	local s1 = loop.stats()
	T.eq(s1.registrations, base.registrations, 'registrations after 11,000 cycles')
	T.eq(s1.pending, base.pending, 'parked threads after 11,000 cycles')
	T.eq(s1.timers, base.timers, 'timers after 11,000 cycles')
	local grown = collectgarbage('count') - mem0
	T.ok(grown < 1024, ('the Lua heap grew by %.0f KB'):format(grown))

	-- sockets dropped without close are closed and unregistered by the collector
	T.eq(cycles(port, state, 'drop', 200, 10), 200, 'dropped cycles handled')
	collect()
	T.eq(loop.stats().registrations, base.registrations, 'registrations after dropped sockets')

	server:close()
	U.wait_until(function() return loop.stats().pending == before.pending end, 'the accept thread')
	collect()
	local s2 = loop.stats()
	T.eq(s2.registrations, before.registrations, 'registrations after the server closed')
	T.eq(s2.pending, before.pending, 'parked threads after the server closed')
	T.eq(s2.timers, before.timers, 'timers after the server closed')
	grown = collectgarbage('count') - mem0
	T.ok(grown < 1024, ('the Lua heap grew by %.0f KB in all'):format(grown))
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
