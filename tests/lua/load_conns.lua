-- Load: LOAD_CONNS connections (400 here; scripts/load.sh runs 10,000) open at the same
-- time in one process, each doing LOAD_ROUNDS round trips (5) with every reply checked.
-- All connections are established before any round trip and stay open until every
-- round trip is done, so they are all held at once. Reports the memory per connection:
-- the RSS (VmRSS) and the Lua heap after a full collection (collectgarbage('count')),
-- with all connections open after their round trips, against before they were opened.
-- The server runs in this process (a connection is then both its ends: two sockets and
-- two threads), or with LOAD_SPLIT=1 in a process of its own (tests/lua/lib/line_server.lua,
-- for when the descriptor limit cannot hold both ends; its memory is reported apart).
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local await = N.await

local CONNS = tonumber(os.getenv('LOAD_CONNS')) or 400
local ROUNDS = tonumber(os.getenv('LOAD_ROUNDS')) or 5
local SPLIT = os.getenv('LOAD_SPLIT') == '1'

local function mem()
	collectgarbage()
	collectgarbage()
	return N.rss_kib(), collectgarbage('count')
end

-- Asks the separate server for its memory: RSS KiB, heap KiB.
local function server_mem(port)
	local s = assert(loop.connect('127.0.0.1', port))
	s:settimeout(10)
	assert(s:send('mem\n'))
	local line = assert(s:receive('*l'))
	s:close()
	local rss, heap = line:match('^(%d+) ([%d.]+)$')
	return tonumber(rss), tonumber(heap)
end

local pid, port, server_exit, srv
local told = false
local ok, err = pcall(T.run, 'load', function()
	local started = loop.now()
	if SPLIT then
		pid, port, server_exit = N.server_process()
	else
		srv = assert(loop.newserver('127.0.0.1', 0, function(skt)
			skt:settimeout(60)
			N.answer_lines(skt, string.reverse)
		end))
		_, port = srv:getsockname()
	end
	local rss0, heap0 = mem()
	local srss0, sheap0
	if SPLIT then srss0, sheap0 = server_mem(port) end

	local connected, done, closed, right, failed = 0, 0, 0, 0, 0
	local gate1, gate2 = {}, {}
	for i = 1, CONNS do
		loop.newthread(function()
			local s, cerr = loop.connect('127.0.0.1', port)
			if not s then
				failed = failed + 1
				error('connect ' .. i .. ': ' .. tostring(cerr))
			end
			s:settimeout(60)
			connected = connected + 1
			gate1[#gate1 + 1] = coroutine.running()
			loop.suspend()
			for r = 1, ROUNDS do
				local msg = ('connection %d round %d'):format(i, r)
				assert(s:send(msg .. '\n'))
				local reply = s:receive('*l')
				if reply == msg:reverse() then right = right + 1 end
			end
			done = done + 1
			gate2[#gate2 + 1] = coroutine.running()
			loop.suspend()
			s:close()
			closed = closed + 1
		end)
	end
	-- bounded: 120 s for everyone to connect, 120 s for the round trips
	await(function() return connected + failed == CONNS end, 'every connection', 12000, 0.01)
	T.eq(connected, CONNS, 'connections established')
	local connect_time = loop.now() - started
	for _, t in ipairs(gate1) do loop.resume(t) end
	await(function() return done == CONNS end, 'every round trip', 12000, 0.01)
	T.eq(right, CONNS * ROUNDS, 'every reply right')
	local rss1, heap1 = mem()
	local srss1, sheap1
	if SPLIT then srss1, sheap1 = server_mem(port) end
	local fds = N.fd_count()
	T.ok(fds >= (SPLIT and 1 or 2) * CONNS, 'all connections open at once: ' .. fds .. ' descriptors')
	for _, t in ipairs(gate2) do loop.resume(t) end
	await(function() return closed == CONNS end, 'every connection to close', 3000, 0.01)
	local total = loop.now() - started
	io.stdout:write(('%d connections held at once (%d descriptors), %d round trips each, %d replies right; connected in %.1f s, all done in %.1f s\n')
		:format(connected, fds, ROUNDS, right, connect_time, total))
	local what = SPLIT and 'client side' or 'both ends'
	local figures = {
		conns = connected, rounds = ROUNDS, replies_right = right, descriptors = fds, split = SPLIT,
		connect_s = connect_time, total_s = total,
		rss_kib_per_conn = (rss1 - rss0) / CONNS, heap_kib_per_conn = (heap1 - heap0) / CONNS,
	}
	io.stdout:write(('memory per connection (%s): RSS %.2f KiB (%d -> %d KiB), Lua heap %.2f KiB (%.0f -> %.0f KiB)\n')
		:format(what, (rss1 - rss0) / CONNS, rss0, rss1, (heap1 - heap0) / CONNS, heap0, heap1))
	if SPLIT then
		io.stdout:write(('memory per connection (server side, own process): RSS %.2f KiB (%d -> %d KiB), Lua heap %.2f KiB (%.0f -> %.0f KiB)\n')
			:format((srss1 - srss0) / CONNS, srss0, srss1, (sheap1 - sheap0) / CONNS, sheap0, sheap1))
		figures.server_rss_kib_per_conn = (srss1 - srss0) / CONNS
		figures.server_heap_kib_per_conn = (sheap1 - sheap0) / CONNS
		T.eq(N.send_raw(port, 'quit\n'), 'bye\n', 'the server stops when told')
		told = true
		N.figures('load_conns', figures)
	else
		srv:close()
		-- the handlers see the clients' close and end
		await(function() return loop.stats().registrations == 0 end, 'the server side to close', 3000, 0.01)
		N.figures('load_conns', figures)
	end
end)
T.ok(ok, tostring(err))
if SPLIT and pid then
	if not told then os.execute('kill ' .. pid) end
	local exited_ok, rest = server_exit()
	T.ok(told and exited_ok and rest == '', 'the server exited 0 when told')
end
N.finish()
