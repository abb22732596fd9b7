-- LuaSec (Debian's lua-sec) in loop threads against our TLS server: a LuaSec socket
-- driven through loop.wrap + call_async, examples/luasec_call_async.lua run against a
-- local TLS server of ours, and our client against a LuaSec server.
local loop = require'socketloop'
local socket = require'socket'
local ssl = require'ssl'
local T = require'testlib'
local N = require'testnet'
local H = require'http_support'
local C = require'tls_support'

local f = C.make()

-- A TLS web server of ours answering 'hello <request line>'; closed by each test.
local web, port
local function start_web()
	web = assert(loop.newserver('127.0.0.1', 0, function(c)
		c:settimeout(10)
		local line = H.read_request(c)
		c:send(H.response(200, 'hello ' .. tostring(line) .. '\n', 'Connection: close\r\n'))
		c:close()
	end, {tls = {certificate = f.server, key = f.server_key}}))
	_, port = web:getsockname()
end

T.run('a LuaSec client driven by call_async', function()
	start_web()
	local skt = loop.wrap(socket.tcp())
	skt:settimeout(10)
	assert(skt:connect('127.0.0.1', port))
	local conn = assert(ssl.wrap(skt:getsocket(), {mode = 'client', protocol = 'any',
		verify = 'peer', cafile = f.ca}))
	conn:sni('localhost')
	-- the asocket now waits on LuaSec's object (which took over the descriptor)
	skt:setsocket(conn)
	local ticker = N.ticker()
	T.eq(skt:call_async(conn.dohandshake, conn), true, 'handshake')
	assert(skt:send('GET /x HTTP/1.0\r\n\r\n'))
	T.eq(skt:receive('*l'), 'HTTP/1.1 200 X', 'status line')
	local body = skt:receive('*a')
	T.ok(body and body:find('hello GET /x HTTP/1.0', 1, true), 'body')
	skt:close()
	ticker.stop()
	T.ok(ticker.n > 0, 'the loop ran during the handshake')
	web:close()
end)

T.run('examples/luasec_call_async.lua against our server', function()
	start_web()
	local out = f.dir .. '/example.out'
	local p = H.spawn(('%s examples/luasec_call_async.lua localhost %d %s /hello > %s 2>&1')
		:format(H.interpreter(), port, H.quote(f.ca), H.quote(out)))
	local function output() return C.read_if(out) end
	N.await(function() return output():find('body: ', 1, true) end, 'the example to finish')
	T.ok(output():find('HTTP/1.1 200 X', 1, true), 'status: ' .. output())
	T.ok(output():find('the ticker ran on', 1, true), 'the loop ran meanwhile')
	H.stop(p)
	web:close()
end)

T.run('our client against a LuaSec server in a loop thread', function()
	local listener = loop.wrap(socket.tcp())
	assert(listener:bind('127.0.0.1', 0))
	assert(listener:listen())
	local _, sport = listener:getsockname()
	local served = N.spawn(function()
		local skt = assert(listener:accept())
		skt:settimeout(10)
		local conn = assert(ssl.wrap(skt:getsocket(), {mode = 'server', protocol = 'any',
			certificate = f.server, key = f.server_key}))
		skt:setsocket(conn)
		assert(skt:call_async(conn.dohandshake, conn))
		local line = skt:receive('*l')
		skt:send(line:reverse() .. '\n')
		skt:close()
		return line
	end)
	local s = assert(loop.connect('127.0.0.1', sport, {tls = {cafile = f.ca}, timeout = 10}))
	T.ok(N.exchange(s, 'to luasec', 'cesaul ot'), 'round trip')
	s:close()
	N.await(served, 'the LuaSec server')
	T.eq(served()[1], 'to luasec', 'the LuaSec server read our line')
	listener:close()
end)

C.cleanup(f)
N.finish()
