-- Name lookups off the loop (loop.resolve, and the connects of names), inside a mount
-- namespace whose /etc/hosts and resolv.conf the test wrote (tests/lua/lib/namespace.lua):
-- /etc/hosts names resolve; a name server that never answers stalls only the thread
-- that asked, while a 10 ms ticker keeps ticking; lookups abandoned by a timeout leak
-- nothing and wake nobody; the pool stays within its bound; a name with a dead and a
-- live address connects to the live one, also when the dead one never answers (Happy
-- Eyeballs).
local NS = require'namespace'
if NS.outside() then
	NS.rerun{
		hosts = table.concat({
			'127.0.0.1 localhost',
			'::1 localhost6',
			'127.0.0.1 live.sltest',
			'::1 fallback.sltest',
			'127.0.0.1 fallback.sltest',
			'::1 silent.sltest',
			'127.0.0.1 silent.sltest',
			'::1 dead.sltest',
			'127.0.0.1 dead.sltest',
		}, '\n') .. '\n',
		-- One try of one second: a stalled lookup ends quickly.
		resolv = 'options timeout:1 attempts:1\n',
	}
end

local loop = require'socketloop'
local T = require'testlib'
local socket = require'socket'

-- The name server: a UDP port that takes queries and never answers.
local silent_ns = assert(socket.udp())
assert(silent_ns:setsockname(NS.nameserver, 53))

-- A thread that sleeps 10 ms at a time until stop(), counting the wake-ups it had while
-- a lookup was pending (loop.stats().lookups), and the longest gap between wake-ups (for
-- the log only: on a loaded machine a gap says nothing about the loop).
local function ticker()
	local t = {on = true, max_gap = 0, ticks = 0, while_pending = 0}
	loop.newthread(function()
		local last = loop.now()
		while t.on do
			loop.sleep(0.01)
			local now = loop.now()
			if now - last > t.max_gap then t.max_gap = now - last end
			last = now
			t.ticks = t.ticks + 1
			if loop.stats().lookups > 0 then t.while_pending = t.while_pending + 1 end
		end
	end)
	return t
end

T.run('/etc/hosts names resolve through the pool', function()
	local addrs, err = loop.resolve('live.sltest')
	T.same(addrs, {'127.0.0.1'}, 'live.sltest: ' .. tostring(err))
	T.same(loop.resolve('localhost', 'inet'), {'127.0.0.1'}, 'localhost, inet')
	T.same(loop.resolve('fallback.sltest', 'inet6'), {'::1'}, 'a family filter')
	local both = loop.resolve('fallback.sltest')
	T.eq(#both, 2, 'both addresses')
	T.same(loop.resolve('127.0.0.1'), {'127.0.0.1'}, 'a literal')
	T.same(loop.resolve('[::1]'), {'::1'}, 'a bracketed literal')
	T.eq(select(2, loop.resolve('::1', 'inet')), 'host not found', 'a literal of the other family')
	T.raises("bad argument #1 to 'resolve'", loop.resolve, 42)
	T.raises("bad argument #2 to 'resolve'", loop.resolve, 'localhost', 'ipx')
	T.raises("bad argument #3 to 'resolve'", loop.resolve, 'localhost', nil, -1)
	T.raises("bad argument #3 to 'resolve'", loop.resolve, 'localhost', nil, 0/0)
	local srv = assert(loop.newserver('127.0.0.1', 0, function(c) c:send('live\n') c:close() end))
	local _, port = srv:getsockname()
	local c = assert(loop.connect('live.sltest', port))
	T.eq(c:receive(), 'live', 'connected by name')
	c:close()
	srv:close()
	local st = loop.stats()
	T.eq(st.lookups, 0, 'no lookup left')
	T.ok(st.resolver_threads >= 1 and st.resolver_threads <= 4, 'threads: ' .. st.resolver_threads)
end)

T.run('a stalled name server stalls only the thread that asked', function()
	local tick = ticker()
	local t0 = loop.now()
	local c, err = loop.connect('stalled.sltest', 80)
	local took = loop.now() - t0
	tick.on = false
	T.eq(c, nil, 'no connection')
	T.eq(err, 'host not found', 'the error')
	T.ok(took >= 0.5, ('the lookup waited for the resolver (%.2f s)'):format(took))
	-- A lookup that blocked the loop would let no other thread run while it is pending.
	T.ok(tick.while_pending >= 2, 'the ticker ran while the lookup was pending: '
		.. tick.while_pending .. ' of ' .. tick.ticks .. ' wake-ups')
	print(('stalled lookup: %.2f s, %d ticks, longest gap %.1f ms'):format(took, tick.ticks, tick.max_gap * 1000))
end)

T.run('a lookup abandoned by a timeout leaks nothing and wakes nobody', function()
	local before = loop.stats()
	local addrs, err = loop.resolve('abandoned.sltest', nil, 0.1)
	T.eq(addrs, nil, 'no addresses')
	T.eq(err, 'timeout', 'the caller timed out')
	local st = loop.stats()
	T.eq(st.lookups, 0, 'the lookup was forgotten')
	T.eq(st.registrations, before.registrations, 'its registration was freed')
	-- The same through a socket's timeout.
	local s = loop.tcp()
	s:settimeout(0.1)
	T.eq(select(2, s:connect('abandoned2.sltest', 80)), 'timeout', 'connect times out')
	s:close()
	-- The abandoned lookups end within the resolver's one second; the thread that asked
	-- is asleep meanwhile and must not be woken by them.
	local t0 = loop.now()
	loop.sleep(1.5)
	T.ok(loop.now() - t0 >= 1.5 - 0.005, 'the sleep was not cut short')
	st = loop.stats()
	T.eq(st.resolver_busy, 0, 'no thread still busy')
	T.eq(st.lookups, 0, 'nothing pending')
	T.eq(st.registrations, before.registrations, 'registrations as before')
end)

T.run('the pool runs at most 4 lookups; queued ones wait, cancelled ones never run', function()
	local done, max_threads, max_queued = 0, 0, 0
	for i = 1, 6 do
		loop.newthread(function()
			local _, err = loop.resolve('busy' .. i .. '.sltest', nil, i <= 5 and 3 or 0.1)
			T.ok(err == 'host not found' or err == 'timeout', 'lookup ' .. i .. ': ' .. tostring(err))
			done = done + 1
		end)
	end
	for _ = 1, 300 do
		local st = loop.stats()
		max_threads = math.max(max_threads, st.resolver_threads)
		max_queued = math.max(max_queued, st.resolver_queued)
		if done == 6 then break end
		loop.sleep(0.01)
	end
	T.eq(done, 6, 'all lookups ended')
	T.ok(max_threads <= 4, 'threads: ' .. max_threads)
	T.ok(max_queued >= 1, 'some lookups were queued: ' .. max_queued)
	local st = loop.stats()
	T.eq(st.lookups, 0, 'nothing pending')
end)

-- A port nothing listens on: bound once, then closed.
local function free_port(ip)
	local s = assert(loop.tcp(ip, 0))
	local _, port = s:getsockname()
	s:close()
	return port
end

T.run('a name with a dead and a live address connects to the live one', function()
	local srv = assert(loop.newserver('127.0.0.1', 0, function(c) c:send('live\n') c:close() end))
	local _, port = srv:getsockname()
	-- ::1 comes first and refuses: the next address is tried at once.
	local t0 = loop.now()
	local c, err = loop.connect('fallback.sltest', port)
	T.ok(c, 'connected: ' .. tostring(err))
	if c then
		T.eq(c:receive(), 'live', 'to the live address')
		T.eq(c:getpeername(), '127.0.0.1', 'peer')
		c:close()
	end
	print(('refused ::1 then 127.0.0.1: %.1f ms'):format((loop.now() - t0) * 1000))
	-- Both dead: the error names the host and the last cause.
	local port2 = free_port('127.0.0.1')
	local s = loop.tcp()
	c, err = s:connect('dead.sltest', port2)
	T.eq(c, nil, 'both refuse')
	T.eq(err, 'dead.sltest: connection refused', 'the error')
	s:close()
	-- Timeout 0: connect answers 'timeout' until the race is decided, as LuaSocket's
	-- does until its connect is done.
	s = loop.tcp()
	s:settimeout(0)
	local r, e, calls = nil, nil, 0
	for _ = 1, 500 do
		calls = calls + 1
		r, e = s:connect('fallback.sltest', port)
		if r or e ~= 'timeout' then break end
		loop.sleep(0.002)
	end
	T.eq(r, 1, 'a polled connect completes: ' .. tostring(e) .. ' after ' .. calls .. ' calls')
	s:settimeout(5)
	T.eq(s:receive(), 'live', 'to the live address')
	s:close()
	-- Options set before the connect apply to the connection that won.
	s = loop.tcp()
	s:setoption('keepalive', true)
	T.eq(s:connect('fallback.sltest', port), 1, 'connect with an option set')
	T.eq(s:getoption('keepalive'), true, 'the option is on the winner')
	s:close()
	srv:close()
	T.eq(loop.stats().registrations, 0, 'nothing left registered')
end)

T.run('Happy Eyeballs: an address that never answers does not hold up the next', function()
	-- ::1 on the port has a full backlog (its SYNs are dropped); 127.0.0.1 serves.
	local srv = assert(loop.newserver('127.0.0.1', 0, function(c) c:send('live\n') c:close() end))
	local _, port = srv:getsockname()
	local full = loop.tcp6()
	full:setoption('reuseaddr', true)
	local bound, berr = full:bind('::1', port)
	T.ok(bound, 'bound ::1 on the same port: ' .. tostring(berr))
	full:listen(0)
	local fillers = {}
	local stuck = false
	for i = 1, 20 do
		local f = loop.tcp6()
		f:settimeout(0.3)
		local ok = f:connect('::1', port)
		fillers[i] = f
		if not ok then stuck = true break end
	end
	T.ok(stuck, 'the backlog is full')
	local s = loop.tcp()
	s:settimeout(30)
	local t0 = loop.now()
	local ok, err = s:connect('silent.sltest', port)
	local took = loop.now() - t0
	T.eq(ok, 1, 'connected: ' .. tostring(err))
	T.eq(s:getpeername(), '127.0.0.1', 'to the live address')
	T.eq(s:receive(), 'live', 'served')
	T.ok(took >= 0.2, ('the second attempt started after the stagger (%.3f s)'):format(took))
	print(('silent ::1, live 127.0.0.1: connected in %.1f ms'):format(took * 1000))
	s:close()
	for _, f in ipairs(fillers) do f:close() end
	full:close()
	srv:close()
	T.eq(loop.stats().registrations, 0, 'nothing left registered')
end)

silent_ns:close()
T.finish()
