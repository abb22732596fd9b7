-- loop.udp / loop.udp6: LuaSocket's UDP methods on the loop. An echo of 1,000 datagrams,
-- each checked; receive timeouts; connected sockets (setpeername, send, receive, '*');
-- names looked up through the pool; a wrapped LuaSocket UDP object; options set and read
-- back; misuse raising errors; close waking a parked receiver; calls outside the loop.
local loop = require'socketloop'
local T = require'testlib'
local socket = require'socket'

local base = loop.stats().registrations

-- An echo server on 127.0.0.1 in a loop thread; returns the socket and its port.
local function echo_server()
	local srv = assert(loop.udp())
	T.eq(srv:setsockname('127.0.0.1', 0), 1, 'setsockname')
	local ip, port, family = srv:getsockname()
	T.eq(ip, '127.0.0.1', 'bound address')
	T.eq(family, 'inet', 'family')
	loop.newthread(function()
		while true do
			local data, from, fport = srv:receivefrom()
			if not data then break end
			if data == 'stop' then break end
			assert(srv:sendto(data, from, fport))
		end
	end)
	return srv, port
end

T.run('an echo of 1,000 datagrams, each checked', function()
	local srv, port = echo_server()
	local c = assert(loop.udp())
	c:settimeout(5)
	local got, wrong = 0, 0
	-- Bursts of 10 in flight: the server's thread parks and wakes between them.
	for burst = 0, 99 do
		for i = 1, 10 do
			local n = burst * 10 + i
			T.eq(c:sendto(('datagram %04d %s'):format(n, ('x'):rep(n % 200)), '127.0.0.1', port),
				14 + n % 200, 'sendto returns the bytes sent') 
		end
		for i = 1, 10 do
			local n = burst * 10 + i
			local data, ip, p = c:receivefrom()
			if data == ('datagram %04d %s'):format(n, ('x'):rep(n % 200)) and ip == '127.0.0.1' and p == port then
				got = got + 1
			else
				wrong = wrong + 1
			end
		end
	end
	T.eq(got, 1000, 'echoes in order')
	T.eq(wrong, 0, 'wrong echoes')
	c:sendto('stop', '127.0.0.1', port)
	c:close()
	srv:close()
end)

T.run('receive timeouts', function()
	local u = assert(loop.udp('127.0.0.1', 0))
	u:settimeout(0.05)
	T.eq(select(2, u:receivefrom()), 'timeout', 'receivefrom times out')
	T.eq(select(2, u:receive()), 'timeout', 'receive times out')
	u:settimeout(0.05, 't')
	T.eq(select(2, u:receivefrom()), 'timeout', "a total ('t') timeout")
	u:settimeout(0)
	T.eq(select(2, u:receivefrom()), 'timeout', 'timeout 0: at once')
	-- A datagram that comes while the thread is parked wakes it.
	u:settimeout(5)
	local _, port = u:getsockname()
	loop.newthread(function()
		loop.sleep(0.02)
		local s = assert(loop.udp())
		s:sendto('late', '127.0.0.1', port)
		s:close()
	end)
	T.eq(u:receive(), 'late', 'a parked receive wakes')
	-- Sizes: a longer datagram is cut to the size asked, the rest dropped.
	local s = assert(loop.udp())
	s:sendto('0123456789', '127.0.0.1', port)
	T.eq(u:receive(4), '0123', 'cut to 4 bytes')
	s:sendto('abc', '127.0.0.1', port)
	T.eq(u:receive(), 'abc', 'the rest of the long one was dropped')
	s:sendto('', '127.0.0.1', port)
	T.eq(u:receive(), '', 'an empty datagram')
	s:close()
	u:close()
end)

T.run('connected sockets: setpeername, send, receive, and back with *', function()
	local srv, port = echo_server()
	local c = assert(loop.udp())
	T.ok(tostring(c):find('^udp{unconnected}'), 'unconnected: ' .. tostring(c))
	T.eq(c:setpeername('127.0.0.1', port), 1, 'setpeername')
	T.ok(tostring(c):find('^udp{connected}'), 'connected: ' .. tostring(c))
	local ip, p, family = c:getpeername()
	T.eq(ip, '127.0.0.1', 'peer address')
	T.eq(p, port, 'peer port')
	T.eq(family, 'inet', 'peer family')
	c:settimeout(5)
	T.eq(c:send('hello'), 5, 'send')
	T.eq(c:receive(), 'hello', 'receive')
	T.eq(c:setpeername('*'), 1, "setpeername('*')")
	T.eq(c:getpeername(), nil, 'no peer any more')
	T.ok(tostring(c):find('^udp{unconnected}'), 'unconnected again: ' .. tostring(c))
	-- Names go through the resolver pool.
	T.eq(c:sendto('by name', 'localhost', port), 7, 'sendto a name')
	T.eq(c:receive(), 'by name', 'echoed')
	T.eq(c:setpeername('localhost', port), 1, 'setpeername to a name')
	T.eq(select(2, c:setpeername('no-such-host.invalid', port)), 'host not found', 'unknown name')
	c:send('stop')
	c:close()
	srv:close()
end)

T.run('IPv6: loop.udp6 on ::1', function()
	local a = assert(loop.udp6())
	T.ok(a:getfd() >= 0, 'udp6 has its descriptor at once')
	T.eq(a:getoption('ipv6-v6only'), true, 'IPv6 only')
	T.eq(a:setsockname('::1', 0), 1, 'bound to ::1')
	local _, port, family = a:getsockname()
	T.eq(family, 'inet6', 'family')
	local b = assert(loop.udp6('::1', 0))
	b:sendto('six', '::1', port)
	a:settimeout(5)
	local data, ip = a:receivefrom()
	T.eq(data, 'six', 'received')
	T.eq(ip, '::1', 'from ::1')
	T.eq(select(2, b:sendto('x', '127.0.0.1', port)), 'address family not supported', 'IPv4 on an IPv6 socket')
	a:close()
	b:close()
end)

T.run('a wrapped LuaSocket UDP object', function()
	local srv, port = echo_server()
	local ls = assert(socket.udp())
	local w = loop.wrap(ls)
	T.ok(loop.wrap(w) == w, 'wrapping twice gives the same object')
	T.eq(w:getsocket(), ls, 'getsocket')
	T.eq(w:setsockname('127.0.0.1', 0), 1, 'setsockname through the wrapper')
	w:settimeout(5)
	-- The echo comes back while this thread is parked on the LuaSocket descriptor.
	T.ok(w:sendto('luasocket', '127.0.0.1', port), 'sendto')
	local data, ip, p = w:receivefrom()
	T.eq(data, 'luasocket', 'echo through a wrapped LuaSocket object')
	T.eq(ip, '127.0.0.1', 'from')
	T.eq(p, port, 'port')
	w:settimeout(0.05)
	T.eq(select(2, w:receive()), 'timeout', 'a wrapped receive times out')
	T.eq(w:setpeername('127.0.0.1', port), 1, 'setpeername')
	w:settimeout(5)
	T.ok(w:send('again'), 'send')
	T.eq(w:receive(), 'again', 'receive')
	T.eq(w.class, ls.class, "the wrapper's class is the LuaSocket object's")
	w:send('stop')
	w:close()
	srv:close()
end)

T.run("LuaSocket's class field", function()
	local u = assert(loop.udp())
	T.eq(u.class, 'udp{unconnected}', 'a new socket')
	T.eq(u:setpeername('127.0.0.1', 9), 1, 'setpeername')
	T.eq(u.class, 'udp{connected}', 'connected')
	T.eq(u:setpeername('*'), 1, 'setpeername * disconnects')
	T.eq(u.class, 'udp{unconnected}', 'unconnected again')
	u:close()
	T.eq(u.class, 'udp{unconnected}', 'a closed socket keeps its class, as LuaSocket')
end)

T.run('options set and read back', function()
	local u = assert(loop.udp())
	-- Before the descriptor exists: kept, applied when it is made.
	T.eq(u:setoption('reuseaddr', true), 1, 'reuseaddr before bind')
	T.eq(u:getoption('reuseaddr'), true, 'reuseaddr kept')
	u:setsockname('127.0.0.1', 0)
	T.eq(u:getoption('reuseaddr'), true, 'reuseaddr applied')
	for _, case in ipairs{
		{'broadcast', true}, {'broadcast', false},
		{'dontroute', true}, {'dontroute', false},
		{'reuseport', true}, {'reuseaddr', false},
		{'ip-multicast-ttl', 5}, {'ip-multicast-loop', false}, {'ip-multicast-loop', true},
		{'ip-multicast-if', '127.0.0.1'},
	} do
		local name, value = case[1], case[2]
		T.eq(u:setoption(name, value), 1, 'set ' .. name)
		T.eq(u:getoption(name), value, name .. ' read back')
	end
	T.eq(u:setoption('ip-add-membership', {multiaddr = '239.255.7.7', interface = '127.0.0.1'}), 1, 'join a group')
	T.eq(u:setoption('ip-drop-membership', {multiaddr = '239.255.7.7', interface = '127.0.0.1'}), 1, 'leave it')
	T.ok(u:setoption('recv-buffer-size', 65536), 'recv-buffer-size')
	T.ok(u:getoption('recv-buffer-size') >= 65536, 'recv-buffer-size read back')
	T.raises("bad argument #1 to 'setoption' (unsupported option 'nope')", u.setoption, u, 'nope', 1)
	T.raises("bad argument #2 to 'setoption'", u.setoption, u, 'ip-multicast-ttl', -1)
	T.raises("bad argument #2 to 'setoption'", u.setoption, u, 'ip-add-membership', 'x')
	u:close()
	local six = assert(loop.udp6())
	for _, case in ipairs{{'ipv6-unicast-hops', 7}, {'ipv6-multicast-hops', 3},
			{'ipv6-multicast-loop', false}, {'ipv6-v6only', true}} do
		T.eq(six:setoption(case[1], case[2]), 1, 'set ' .. case[1])
		T.eq(six:getoption(case[1]), case[2], case[1] .. ' read back')
	end
	six:close()
end)

T.run('misuse raises errors naming the function and argument', function()
	local u = assert(loop.udp('127.0.0.1', 0))
	T.raises("bad argument #1 to 'receive'", u.receive, u, -1)
	T.raises("bad argument #1 to 'receivefrom'", u.receivefrom, u, 0/0)
	T.raises("bad argument #1 to 'receivefrom'", u.receivefrom, u, math.huge)
	T.raises("bad argument #1 to 'sendto' (string expected", u.sendto, u, {}, '127.0.0.1', 1)
	T.raises("bad argument #3 to 'sendto' (port out of range)", u.sendto, u, 'x', '127.0.0.1', 70000)
	T.raises("bad argument #2 to 'setsockname' (port out of range)", u.setsockname, u, '127.0.0.1', -1)
	T.raises("bad argument #1 to 'settimeout'", u.settimeout, u, 'x')
	T.raises("bad argument #1 to 'udp'", loop.udp, 42)
	u:close()
	T.eq(select(2, u:receive()), 'closed', 'receive on a closed socket')
	T.eq(select(2, u:sendto('x', '127.0.0.1', 9)), 'closed', 'sendto on a closed socket')
end)

T.run('close wakes a parked receiver', function()
	local u = assert(loop.udp('127.0.0.1', 0))
	local result
	loop.newthread(function() result = {u:receivefrom()} end)
	loop.sleep(0.01)
	u:close()
	loop.sleep(0.01)
	T.ok(result and result[1] == nil and result[2] == 'closed', 'woken with closed: ' .. tostring(result and result[2]))
end)

-- Outside a loop thread the calls block, as LuaSocket's.
local u = assert(loop.udp('127.0.0.1', 0))
local _, port = u:getsockname()
u:settimeout(0.05)
T.eq(select(2, u:receivefrom()), 'timeout', 'a blocking receive times out')
local s = assert(loop.udp())
T.eq(s:sendto('outside', '127.0.0.1', port), 7, 'a blocking sendto')
u:settimeout(5)
T.eq(u:receive(), 'outside', 'a blocking receive')
s:close()
u:close()
collectgarbage()
T.eq(loop.stats().registrations, base, 'every registration freed')
T.finish()
