-- socketloop.rpc servers and clients: newserver (one client, both ends call each
-- other), newserveronly / newmultiserver (many clients, in parallel and one after
-- another; onconnect; rpc.caller; server:close), the defaults 'localhost':1999, options
-- and argument checks, and calls made outside any loop thread.
local loop = require'socketloop'
local rpc = require'socketloop.rpc'
local T = require'testlib'
local N = require'testnet'

-- Waits (bounded) until cond() holds: up to 1000 steps of 5 ms.
local function wait_until(cond, what) return N.await(cond, what, 1000, 0.005) end

T.run('rpc newserver: one client, calls both ways', function()
	local port
	local server_session
	loop.newthread(function()
		server_session = assert(rpc.newserver('127.0.0.1', 0, {
			expose = {whoami = function() return 'server' end},
			onlisten = function(ip, p) port = p; T.eq(ip, '127.0.0.1', 'onlisten address') end,
		}))
	end)
	T.ok(port and port > 0, 'onlisten gave the port')
	local client = assert(rpc.newclient('127.0.0.1', port, {
		expose = {whoami = function() return 'client' end},
	}))
	wait_until(function() return server_session ~= nil end, 'the server session')
	T.eq(client:call('whoami'), 'server', 'client calls server')
	T.eq(server_session:call('whoami'), 'client', 'server calls client')
	-- the listening socket is gone: nobody else can connect
	local again, err = loop.connect('127.0.0.1', port)
	T.eq(again, nil, 'newserver stopped listening')
	T.eq(err, 'connection refused')
	client:close()
	wait_until(function() return select(2, server_session:call('whoami')) == 'closed' end,
		'the server session to see the close')

	-- newserver with a timeout and no client
	local s, e = rpc.newserver('127.0.0.1', 0, {timeout = 0.05, expose = {}})
	T.eq(s, nil, 'no client came')
	T.eq(e, 'timeout')
end)

T.run('rpc newserveronly: many clients, callbacks, close', function()
	local connected, answered = 0, 0
	local api = {}
	-- calls back into the client that called, through rpc.caller()
	function api.twice_via_client(x)
		local back = rpc.caller()
		return back:call('double', x) + back:call('double', x)
	end
	function api.id() return 'multi' end
	local server = assert(rpc.newmultiserver('127.0.0.1', 0, {
		expose = api,
		onconnect = function(session)
			connected = connected + 1
			if session:call('double', 5) == 10 then answered = answered + 1 end
		end,
	}))
	local _, port = server:getsockname()
	local clients, finished = 10, 0
	for c = 1, clients do
		loop.newthread(function()
			local s = assert(rpc.newclient('127.0.0.1', port, {
				expose = {double = function(x) return x * 2 + c * 0 end},
			}))
			for i = 1, 20 do
				T.eq(s:call('twice_via_client', i), 4 * i, 'callback result')
			end
			s:close()
			finished = finished + 1
		end)
	end
	wait_until(function() return finished == clients end, 'parallel clients')
	T.eq(connected, clients, 'onconnect ran for each client')
	for _ = 1, 5 do -- one after another
		local s = assert(rpc.newclient('127.0.0.1', port, {expose = {double = function(x) return x * 2 end}}))
		T.eq(s:call('id'), 'multi', 'sequential client')
		s:close()
	end
	wait_until(function() return answered == clients + 5 end, 'onconnect to call each new client back')
	T.eq(rpc.caller(), nil, 'no caller outside a served call')
	-- server:close() closes the sessions it accepted
	local s = assert(rpc.newclient('127.0.0.1', port, {expose = {double = function(x) return x * 2 end}}))
	T.eq(s:call('id'), 'multi')
	T.eq(server:close(), 1, 'server close')
	wait_until(function() return select(2, s:call('id')) == 'closed' end, 'the session to close')
	T.eq(select(2, rpc.newclient('127.0.0.1', port)), 'connection refused', 'no longer listening')
end)

T.run('rpc defaults: localhost:1999', function()
	T.eq(rpc.DEFAULT_ADDRESS, 'localhost')
	T.eq(rpc.DEFAULT_PORT, 1999)
	-- the other test run (runner or luajit) may hold the port for a moment
	local server, err
	for _ = 1, 400 do
		server, err = rpc.newserveronly({expose = {ping = function() return 'pong' end}})
		if server or err ~= 'address already in use' then break end
		loop.sleep(0.025)
	end
	if T.ok(server, 'default server: ' .. tostring(err)) then
		T.eq(select(2, server:getsockname()), 1999, 'default port')
		local s = assert(rpc.newclient({expose = {}}))
		T.eq(s:call('ping'), 'pong', 'default client reaches default server')
		local ip = s.skt:getpeername()
		T.ok(ip == '127.0.0.1' or ip == '::1', 'default address is loopback: ' .. tostring(ip))
		s:close()
		server:close()
	end
end)

T.run('rpc argument and option checks', function()
	T.raises("bad argument #1 to 'newclient' (address string expected, got boolean)", rpc.newclient, true)
	T.raises("bad argument #2 to 'newclient' (port number expected, got boolean)", rpc.newclient, 'x', true)
	T.raises("bad argument #3 to 'newclient' (unknown option 'bogus')", rpc.newclient, 'x', 1, {bogus = 1})
	T.raises("bad argument #1 to 'newserver' (option 'maxsize' must be a positive integer)",
		rpc.newserver, {maxsize = -1})
	T.raises("bad argument #2 to 'newserveronly' (option 'exec' must be true, false or 'loopback')",
		rpc.newserveronly, '127.0.0.1', {exec = 'yes'})
	T.raises("bad argument #3 to 'newserveronly' (unknown option 'onlisten')",
		rpc.newserveronly, '127.0.0.1', 0, {onlisten = print})
	T.raises("bad argument #3 to 'newclient' (options table expected, got number)", rpc.newclient, 'a', 1, 2)
	T.raises("bad argument #3 to 'newclient' (option 'message_timeout' must be a positive number)",
		rpc.newclient, 'a', 1, {message_timeout = 0})
	local before = loop.stats().registrations
	T.raises('onlisten failed', rpc.newserver, '127.0.0.1', 0, {onlisten = function() error('onlisten failed') end})
	T.eq(loop.stats().registrations, before, 'the listening socket closed when onlisten raised')
	local s, err = rpc.newclient('127.0.0.1', 1, {expose = {}})
	T.eq(s, nil, 'connect to a closed port')
	T.eq(err, 'connection refused')
	s, err = rpc.newserveronly('256.0.0.1', 0, {expose = {}})
	T.eq(s, nil, 'bad address')
	T.ok(type(err) == 'string', 'bad address error: ' .. tostring(err))
end)

-- Outside a loop thread (the main chunk under stock luajit), calls drive the loop
-- themselves; under the runner the main chunk is a loop thread and they just wait.
local server = assert(rpc.newserveronly('127.0.0.1', 0, {expose = {add = function(a, b) return a + b end}}))
local _, port = server:getsockname()
local s = assert(rpc.newclient('127.0.0.1', port, {expose = {}}))
T.eq(s:call('add', 20, 22), 42, 'call from the main chunk (' .. T.mode .. ')')
T.eq(select(2, s:call('nothing')), 'function not existing', 'missing from the main chunk')
s:close()
server:close()

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
