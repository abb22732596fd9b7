-- The security policy of socketloop.rpc (docs/security.md): who may run remote code and
-- bytecode, and where _G may be exposed.
local loop = require'socketloop'
local rpc = require'socketloop.rpc'
local policy = require'socketloop.rpc.policy'
local T = require'testlib'

T.run('rpc policy decisions', function()
	for _, ip in ipairs{'127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1'} do
		T.ok(policy.is_loopback(ip), ip .. ' is loopback')
	end
	for _, ip in ipairs{'10.0.0.1', '192.0.2.1', '0.0.0.0', '::', '::ffff:10.0.0.1', '128.0.0.1',
			'1127.0.0.1', 'localhost'} do
		T.ok(not policy.is_loopback(ip), ip .. ' is not loopback')
	end
	T.ok(not policy.is_loopback(nil), 'no address is not loopback')
	T.ok(policy.allows('loopback', '127.0.0.1') and not policy.allows('loopback', '192.0.2.1'),
		"'loopback' lets loopback peers in only")
	T.ok(policy.allows(true, '192.0.2.1') and not policy.allows(false, '127.0.0.1'), 'true and false')
	T.ok(policy.may_expose(_G, false, '127.0.0.1'), '_G on loopback')
	T.ok(policy.may_expose({}, false, '0.0.0.0'), 'own table anywhere')
	T.ok(policy.may_expose(_G, true, '0.0.0.0'), '_G anywhere with allow_public_globals')
	local ok, why = policy.may_expose(_G, false, '0.0.0.0', 'on address')
	T.ok(not ok and why:find('allow_public_globals = true', 1, true), 'refusal names the option')
end)

T.run('rpc refuses to expose _G on a non-loopback address', function()
	local before = loop.stats().registrations
	T.raises('exposing _G on address 0.0.0.0 (not loopback) needs the option allow_public_globals = true',
		rpc.newserveronly, '*', 0)
	T.raises('exposing _G on address 0.0.0.0', rpc.newserveronly, '0.0.0.0', 0, {expose = _G})
	T.raises('exposing _G on address 0.0.0.0', rpc.newserver, '*', 0)
	T.eq(loop.stats().registrations, before, 'the refused sockets were closed')
	-- _G on loopback is fine; so is an exposed table of one's own
	local s = assert(rpc.newserveronly('127.0.0.1', 0))
	s:close()
end)

T.run('rpc exposes only the exposed table', function()
	local server = assert(rpc.newserveronly('127.0.0.1', 0, {expose = {f = function() return 1 end}}))
	local _, port = server:getsockname()
	local s = assert(rpc.newclient('127.0.0.1', port, {expose = {}}))
	T.eq(select(2, s:call('os.execute', 'true')), 'function not existing', 'os.execute unreachable')
	T.eq(s:eval('os'), nil, 'os unreachable by eval')
	T.eq(s:eval('_G'), nil, '_G unreachable by eval')
	s:close()
	server:close()
end)

-- Starts a server with `options`, connects, and returns the client session. `peer`, when
-- given, replaces the address the server session believes its peer has: the tests may
-- only use loopback, and this is how a remote peer is simulated.
local function pair(options, peer)
	options.expose = {f = function() return 'f' end}
	if peer then
		options.onconnect = function(session) session.peer = peer end
	end
	local server = assert(rpc.newserveronly('127.0.0.1', 0, options))
	local _, port = server:getsockname()
	local s = assert(rpc.newclient('127.0.0.1', port, {expose = {}}))
	return s, server
end

local function bytecode_fn(x) return x + 1 end

T.run('rpc newexec and bytecode policy', function()
	-- default: loopback peers may send source and bytecode
	local s, server = pair({})
	T.eq(s:newexec('return 1 + ...')(1), 2, 'source from loopback')
	T.eq(s:newexec(bytecode_fn)(1), 2, 'bytecode from loopback')
	s:close(); server:close()

	-- default, remote peer: both refused
	s, server = pair({}, '192.0.2.1')
	local ok, err = pcall(s:newexec('return 1'))
	T.ok(not ok and err:find('remote: newexec refused: remote code is not accepted from 192.0.2.1', 1, true),
		'source from a remote peer refused: ' .. tostring(err))
	ok, err = pcall(s:newexec(bytecode_fn), 1)
	T.ok(not ok and err:find('newexec refused', 1, true), 'bytecode from a remote peer refused')
	s:close(); server:close()

	-- exec = true: remote source accepted, remote bytecode still refused by default
	s, server = pair({exec = true}, '192.0.2.1')
	T.eq(s:newexec('return 40 + ...')(2), 42, 'source accepted with exec = true')
	ok, err = pcall(s:newexec(bytecode_fn), 1)
	T.ok(not ok and err:find('bytecode is not accepted from 192.0.2.1', 1, true),
		'bytecode refused unless bytecode allows it: ' .. tostring(err))
	-- bytecode disguised as source is still bytecode
	ok, err = pcall(s:newexec({string.dump(bytecode_fn)}), 1)
	T.ok(not ok and err:find('bytecode is not accepted', 1, true), 'bytecode in a table of parts')
	s:close(); server:close()

	-- exec = true, bytecode = true: everything from anyone
	s, server = pair({exec = true, bytecode = true}, '192.0.2.1')
	T.eq(s:newexec(bytecode_fn)(1), 2, 'bytecode accepted with bytecode = true')
	s:close(); server:close()

	-- exec = false: not even from loopback
	s, server = pair({exec = false})
	ok, err = pcall(s:newexec('return 1'))
	T.ok(not ok and err:find('remote code is not accepted from 127.0.0.1', 1, true), 'exec = false')
	s:close(); server:close()

	-- bytecode = false: loopback source fine, loopback bytecode refused
	s, server = pair({bytecode = false})
	T.eq(s:newexec('return 5')(), 5, 'source with bytecode = false')
	ok, err = pcall(s:newexec(bytecode_fn), 1)
	T.ok(not ok and err:find('bytecode is not accepted from 127.0.0.1', 1, true), 'bytecode = false')
	T.eq(s:call('f'), 'f', 'calls unaffected')
	s:close(); server:close()
end)

T.run('rpc over ::1 counts as loopback', function()
	local server = assert(rpc.newserveronly('::1', 0)) -- _G exposed: allowed on loopback
	local _, port = server:getsockname()
	local s = assert(rpc.newclient('::1', port)) -- _G exposed to a loopback peer
	T.eq(s:call('math.max', 1, 2), 2, 'call over ::1')
	T.eq(s:newexec('return 6 * 7')(), 42, 'newexec from ::1 by default')
	s:close()
	server:close()
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
