-- loop.wrap of a raw descriptor and of a LuaSocket TCP object (socket.tcp(), which has
-- no descriptor until it binds or connects), as a client and as a server, running
-- alongside other loop threads.
local loop = require'socketloop'
local socket = require'socket'
local ffi = require'ffi'
local T = require'testlib'
local N = require'testnet'
local pair, await, ticker = N.pair, N.await, N.ticker

ffi.cdef[[
int dup(int fd);
int socket(int domain, int type, int protocol);
int close(int fd);
int open(const char *path, int flags);
]]
local AF_INET, SOCK_STREAM = 2, 1

-- An echo server of ours: each line comes back prefixed with 'echo: ' after `delay`.
local function echo_server(delay)
	local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
		skt:settimeout(10)
		for _ = 1, 1000 do
			local line = skt:receive()
			if not line then break end
			if delay then loop.sleep(delay) end
			if line == 'count' then
				-- then: everything until close, answered with its length
				local all = skt:receive('*a')
				skt:send(#all .. '\n')
				break
			end
			skt:send('echo: ' .. line .. '\n')
		end
		skt:close()
	end))
	local _, port = server:getsockname()
	return server, port
end

T.run('wrap a raw descriptor (a dup of a connected socket)', function()
	local c, s = pair()
	local fd = ffi.C.dup(c:getfd())
	T.ok(fd >= 0, 'dup')
	local w = loop.wrap(fd)
	T.ok(tostring(w):find('tcp{client}', 1, true), 'a connected descriptor is a client: ' .. tostring(w))
	T.eq(w:getfd(), fd, 'the asocket owns the descriptor')
	w:settimeout(10)
	c:close() -- the dup keeps the connection open
	T.eq(w:send('raw\n'), 4, 'send on the wrapped descriptor')
	T.eq(s:receive(), 'raw', 'peer got it')
	local got
	loop.newthread(function() got = w:receive() end)
	T.eq(got, nil, 'the receive parks')
	s:send('back\n')
	await(function() return got end, 'the parked receive')
	T.eq(got, 'back', 'receive on the wrapped descriptor')
	local _, port = w:getpeername()
	T.eq(port, select(2, s:getsockname()), 'getpeername on the wrapped descriptor')
	w:close()
	T.eq(s:receive(), nil, 'closing the wrapper closes the descriptor')
	s:close()
end)

T.run('wrap a raw listening descriptor and a fresh one', function()
	-- listening: made by LuaSocket, detached from it with setfd(-1)
	local ls = assert(socket.tcp4())
	assert(ls:bind('127.0.0.1', 0))
	assert(ls:listen(8))
	local _, port = ls:getsockname()
	local fd = ls:getfd()
	ls:setfd(-1)
	ls:close()
	local srv = loop.wrap(fd)
	T.ok(tostring(srv):find('tcp{server}', 1, true), 'a listening descriptor is a server: ' .. tostring(srv))
	srv:settimeout(10)
	local accepted
	loop.newthread(function()
		accepted = srv:accept()
		if accepted then
			accepted:send('welcome\n')
		end
	end)
	local c = assert(loop.connect('127.0.0.1', port))
	c:settimeout(10)
	T.eq(c:receive(), 'welcome', 'accepted through the wrapped descriptor')
	c:close()
	if accepted then accepted:close() end
	srv:close()
	-- fresh (not bound): bind and listen through the asocket
	local raw = ffi.C.socket(AF_INET, SOCK_STREAM, 0)
	T.ok(raw >= 0, 'socket()')
	local m = loop.wrap(raw)
	T.ok(tostring(m):find('tcp{master}', 1, true), 'a fresh descriptor is a master: ' .. tostring(m))
	T.eq(m:bind('127.0.0.1', 0), 1, 'bind a wrapped fresh descriptor')
	T.eq(m:listen(), 1, 'listen')
	local ip, mport = m:getsockname()
	T.eq(ip, '127.0.0.1', 'bound')
	c = assert(loop.connect('127.0.0.1', mport))
	m:settimeout(10)
	local a = m:accept()
	T.ok(a ~= nil, 'accept on it')
	c:close()
	if a then a:close() end
	m:close()
end)

T.run('wrap rejects what is not a socket descriptor', function()
	T.raises("bad argument #1 to 'wrap'", loop.wrap, -1)
	T.raises("bad argument #1 to 'wrap'", loop.wrap, 1e6)
	-- a descriptor that is not a socket, which is not closed by the failure
	local devnull = ffi.C.open('/dev/null', 0)
	T.ok(devnull >= 0, 'open /dev/null')
	T.raises("bad argument #1 to 'wrap'", loop.wrap, devnull)
	T.eq(ffi.C.close(devnull), 0, 'the failed wrap left the descriptor open')
end)

T.run('wrap a LuaSocket client', function()
	local server, port = echo_server(0.01)
	local tick = ticker()
	local ls = socket.tcp()
	local a = loop.wrap(ls)
	T.ok(rawequal(a:getsocket(), ls), 'getsocket returns the LuaSocket object')
	a:settimeout(10)
	T.eq(a:connect('127.0.0.1', port), 1, 'connect through the wrapped LuaSocket object')
	T.ok(a:getfd() >= 0, 'it has a descriptor now')
	T.ok(tostring(a):find('tcp{client}', 1, true), 'tostring is LuaSocket\'s: ' .. tostring(a))
	local _, pport = a:getpeername()
	T.eq(pport, port, 'getpeername (LuaSocket)')
	for i = 1, 5 do
		local before = tick.n
		T.eq(a:send('line ' .. i .. '\n'), #('line ' .. i .. '\n'), 'send ' .. i)
		T.eq(a:receive(), 'echo: line ' .. i, 'the reply ' .. i)
		T.ok(tick.n > before, 'another thread ran while the LuaSocket receive waited')
	end
	-- LuaSocket's own methods are reachable through the asocket
	T.eq(a:getfamily(), 'inet4', 'a LuaSocket method not in the asocket API')
	-- a timeout with a partial line, through LuaSocket
	a:settimeout(0.05)
	a:send('count\n')
	a:send('partial')
	local data, err, partial = a:receive()
	T.eq(data, nil, 'no line from the counting server')
	T.eq(err, 'timeout', 'LuaSocket receive times out')
	T.eq(partial, '', 'nothing came back')
	a:settimeout(10)
	a:shutdown('send')
	T.eq(a:receive(), '7', 'the server got the bytes up to the half-close')
	tick.stop()
	a:close()
	server:close()
end)

T.run('a wrapped LuaSocket connect to a closed port', function()
	local tmp = assert(loop.tcp('127.0.0.1', 0))
	local _, port = tmp:getsockname()
	tmp:close()
	local a = loop.wrap(socket.tcp())
	a:settimeout(10)
	local ok, err = a:connect('127.0.0.1', port)
	T.eq(ok, nil, 'refused')
	T.eq(err, 'connection refused', 'LuaSocket says connection refused')
	a:close()
end)

T.run('LuaSocket clients alongside other threads', function()
	local server, port = echo_server()
	local clients, ok_replies = 5, 0
	for c = 1, clients do
		loop.newthread(function()
			local a = loop.wrap(socket.tcp())
			a:settimeout(10)
			assert(a:connect('127.0.0.1', port))
			for i = 1, 20 do
				local msg = ('c%d m%d'):format(c, i)
				a:send(msg .. '\n')
				if T.eq(a:receive(), 'echo: ' .. msg, 'reply') then ok_replies = ok_replies + 1 end
			end
			a:close()
			clients = clients - 1
		end)
	end
	-- and one of ours in the same loop
	local ours = assert(loop.connect('127.0.0.1', port))
	ours:settimeout(10)
	for i = 1, 20 do
		ours:send('ours ' .. i .. '\n')
		T.eq(ours:receive(), 'echo: ours ' .. i, 'our reply')
	end
	ours:close()
	await(function() return clients == 0 end, 'the LuaSocket clients')
	T.eq(ok_replies, 5 * 20, 'all LuaSocket replies')
	server:close()
end)

T.run('wrap a LuaSocket server', function()
	local a = loop.wrap(socket.tcp())
	T.eq(a:bind('127.0.0.1', 0), 1, 'bind through LuaSocket')
	T.eq(a:listen(16), 1, 'listen through LuaSocket')
	local ip, port = a:getsockname()
	T.eq(ip, '127.0.0.1', 'getsockname')
	a:settimeout(10)
	local n, served = 5, 0
	loop.newthread(function()
		for _ = 1, n do
			local client = a:accept()
			if not client then break end
			T.ok(loop.wrap(client) == client, 'accept returns an asocket')
			T.eq(type(client:getsocket()), 'userdata', 'wrapping a LuaSocket client')
			loop.newthread(function()
				client:settimeout(10)
				local line = client:receive()
				client:send('served ' .. tostring(line) .. '\n')
				served = served + 1
				client:close()
			end)
		end
	end)
	local done = 0
	for i = 1, n do
		loop.newthread(function()
			local c = assert(loop.connect('127.0.0.1', port))
			c:settimeout(10)
			c:send('client ' .. i .. '\n')
			T.eq(c:receive(), 'served client ' .. i, 'answer from the LuaSocket server')
			c:close()
			done = done + 1
		end)
	end
	await(function() return done == n end, 'the clients')
	T.eq(served, n, 'served')
	-- accept parks, and an accept timeout comes back as timeout
	a:settimeout(0.05)
	local c, err = a:accept()
	T.eq(c, nil, 'no client')
	T.eq(err, 'timeout', 'LuaSocket accept timed out')
	a:close()
end)

T.run('large send through a wrapped LuaSocket object (wantwrite)', function()
	local server, port = echo_server()
	local a = loop.wrap(socket.tcp())
	a:settimeout(10)
	assert(a:connect('127.0.0.1', port))
	local size = 4 * 1024 * 1024
	local data = ('0123456789abcdef'):rep(size / 16)
	assert(a:send('count\n'))
	T.eq(a:send(data), size, 'the whole send')
	a:shutdown('send')
	T.eq(a:receive(), tostring(size), 'the server counted every byte')
	a:close()
	server:close()
end)

T.run('close from another thread wakes a thread waiting on a LuaSocket object', function()
	local server, port = echo_server()
	local a = loop.wrap(socket.tcp())
	a:settimeout(10)
	assert(a:connect('127.0.0.1', port))
	local res
	loop.newthread(function() res = {a:receive()} end)
	T.eq(res, nil, 'parked')
	a:close()
	await(function() return res end, 'the reader')
	T.eq(res[1], nil, 'no data')
	T.eq(res[2], 'closed', 'closed')
	server:close()
end)

T.run('setsocket to a LuaSocket object', function()
	local server, port = echo_server()
	local x = loop.tcp()
	local ls = assert(socket.connect('127.0.0.1', port))
	x:setsocket(ls)
	T.ok(rawequal(x:getsocket(), ls), 'setsocket')
	x:settimeout(10)
	x:send('via setsocket\n')
	T.eq(x:receive(), 'echo: via setsocket', 'works through the LuaSocket object')
	x:close()
	server:close()
end)

N.finish()
