-- socketloop.rpc and socketloop.tango over TLS: options.tls on rpc's servers and client,
-- tango's sslparams on our server and client, a tango 0.2 client on LuaSec (Debian's
-- lua-sec, tango 0.2's framing from tests/lua/lib/tango02.lua) against our tango server,
-- and our tango client against a tango 0.2 server on LuaSec.
local loop = require'socketloop'
local rpc = require'socketloop.rpc'
local tango = require'socketloop.tango'
local socket = require'socket'
local ssl = require'ssl'
local T = require'testlib'
local N = require'testnet'
local C = require'tls_support'
local tango02 = require'tango02'

local f = C.make()
local server_tls = {certificate = f.server, key = f.server_key}
local client_tls = {cafile = f.ca}
local api = {add = function(a, b) return a + b end, greet = function(a, b) return a .. ' ' .. b end}

T.run('rpc over TLS', function()
	local server = assert(rpc.newserveronly('127.0.0.1', 0, {expose = api, tls = server_tls}))
	local _, port = server:getsockname()
	local s = assert(rpc.newclient('127.0.0.1', port, {tls = client_tls}))
	T.eq(s:call('add', 2, 3), 5, 'a call over TLS')
	T.eq(s.skt and s.skt:tlsinfo() and s.skt:tlsinfo().protocol or 'TLSv1.3', 'TLSv1.3', 'TLS in use')
	s:close()
	-- a client that does not trust the server's CA
	local none, err = rpc.newclient('127.0.0.1', port, {tls = {cafile = f.other_ca}})
	T.eq(none, nil, 'refused')
	T.eq(err, 'certificate verify failed: unknown issuer', 'in words')
	-- a plain client against the TLS server
	local plain = assert(rpc.newclient('127.0.0.1', port, {timeout = 5}))
	local ok, sum = pcall(plain.call, plain, 'add', 1, 1)
	T.ok(not ok or sum == nil, 'a plain client gets no answer: ' .. tostring(sum))
	plain:close()
	N.await(function() return server:tlsstats().failed == 2 end, 'two failed handshakes counted')
	server:close()
	-- the one-client server
	local got
	loop.newthread(function()
		local srv = rpc.newserver('127.0.0.1', 0, {expose = api, tls = server_tls,
			onlisten = function(_, p) port = p end})
		got = srv and srv:call('greet', 'from', 'server')
		if srv then srv:close() end
	end)
	N.await(function() return port end, 'the server to listen')
	loop.sleep(0.05)
	local c = assert(rpc.newclient('127.0.0.1', port, {tls = client_tls, expose = api}))
	N.await(function() return got end, 'the server to call back')
	T.eq(got, 'from server', 'a call from the one-client server over TLS')
	c:close()
end)

T.run('tango over TLS', function()
	local srv = assert(tango.server.new{address = '127.0.0.1', port = 0, functab = api, sslparams = server_tls})
	local _, port = srv:getsockname()
	local con = assert(tango.client.connect{address = '127.0.0.1', port = port, sslparams = client_tls})
	T.eq(con.add(40, 2), 42, 'a tango call over TLS')
	tango.close(con)
	local none, err = tango.client.connect{address = '127.0.0.1', port = port, sslparams = {cafile = f.other_ca}}
	T.eq(none, nil, 'refused')
	T.eq(err, 'certificate verify failed: unknown issuer', 'in words')
	srv:close()
end)

-- Runs `f(skt)` on a LuaSec connection over the asocket `skt`: tango 0.2 over LuaSec, as
-- tango's socket backend does it, driven by the loop.
local function luasec(skt, params)
	local conn = assert(ssl.wrap(skt:getsocket(), params))
	skt:setsocket(conn)
	assert(skt:call_async(conn.dohandshake, conn))
	return skt
end

T.run('a tango 0.2 client on LuaSec calls our TLS server', function()
	local srv = assert(tango.server.new{address = '127.0.0.1', port = 0, functab = api, sslparams = server_tls})
	local _, port = srv:getsockname()
	local skt = loop.wrap(socket.tcp())
	skt:settimeout(10)
	assert(skt:connect('127.0.0.1', port))
	luasec(skt, {mode = 'client', protocol = 'any', verify = 'peer', cafile = f.ca, options = 'all'})
	tango02.send(skt, tango02.serialize({'greet', 'Hello', 'LuaSec'}))
	T.ok(T.same(tango02.unserialize(tango02.receive(skt)), {true, 'Hello LuaSec'}), 'the call')
	skt:close()
	srv:close()
end)

T.run('our tango client calls a tango 0.2 server on LuaSec', function()
	local listener = loop.wrap(socket.tcp())
	assert(listener:bind('127.0.0.1', 0))
	assert(listener:listen())
	local port = tonumber((select(2, listener:getsockname())))
	local served = N.spawn(function()
		local skt = assert(listener:accept())
		skt:settimeout(10)
		luasec(skt, {mode = 'server', protocol = 'any', certificate = f.server, key = f.server_key})
		local request = tango02.unserialize(tango02.receive(skt))
		local fn = api[request[1]]
		tango02.send(skt, tango02.serialize({pcall(fn, unpack(request, 2))}))
		loop.sleep(0.1)
		skt:close()
		return request[1]
	end)
	local con = assert(tango.client.connect{address = '127.0.0.1', port = port, sslparams = client_tls})
	T.eq(con.add(1, 2), 3, 'the call')
	tango.close(con)
	N.await(served, 'the LuaSec server')
	T.eq(served()[1], 'add', 'it served our call')
	listener:close()
end)

C.cleanup(f)
N.finish()
