-- socketloop.tango facing hostile peers: code sent as a request is refused and never
-- run, malformed frames close that connection with a clear error, the server goes on
-- serving others, and _G is not exposed on non-loopback addresses without asking.
local loop = require'socketloop'
local tango = require'socketloop.tango'
local T = require'testlib'
local N = require'testnet'

-- Waits (bounded) until cond() holds: up to 1000 steps of 5 ms.
local function wait_until(cond, what) return N.await(cond, what, 1000, 0.005) end

T.run('tango server facing hostile input', function()
	local errors = {}
	local srv = assert(tango.server.new{
		address = '127.0.0.1', port = 0, maxsize = 1000, message_timeout = 0.2,
		functab = {ping = function() return 'pong' end},
		onerror = function(err) errors[#errors + 1] = err end,
	})
	local _, port = srv:getsockname()
	local good = assert(tango.client.connect{address = '127.0.0.1', port = port})

	-- sends raw `bytes` (closing its side if `close`); expects the server to answer
	-- nothing and close, reporting an error containing `want`
	local function attack(name, bytes, want, close)
		local n = #errors
		local data, err = N.send_raw(port, bytes, close)
		T.ok(data == nil and err == 'closed', name .. ': closed without an answer (' .. tostring(data or err) .. ')')
		wait_until(function() return #errors > n end, name .. ': the report')
		local got = errors[n + 1] or ''
		T.ok(got:find(want, 1, true), name .. ': error "' .. got .. '" says "' .. want .. '"')
		T.eq(good.ping(), 'pong', name .. ': the server still serves others')
	end
	local function frame(s) return #s .. '\n' .. s end

	local target = os.tmpname()
	os.remove(target)
	local touch = 'os.execute("touch ' .. target .. '")'
	attack('code as a request', frame('{' .. touch .. '}'), "cannot unserialize the request: cannot parse byte 2: unexpected 'os'")
	attack('code after a table', frame('{"ping"} ' .. touch), "unexpected 'os' after the value")
	attack('code as a key', frame('{[' .. touch .. ']=1}'), "unexpected 'os'")
	attack('code as an argument', frame('{"ping", ' .. touch .. '}'), "unexpected 'os'")
	T.eq(io.open(target), nil, 'no request ever ran the code')

	attack('not a number', 'abc\n{}', 'tango: malformed length line')
	attack('negative length', '-5\n', 'tango: malformed length line')
	attack('huge length', '99999999999\n', 'tango: length line too long')
	attack('over the limit', '1001\n', 'tango: message of 1001 bytes exceeds the limit of 1000 bytes')
	attack('endless length line', string.rep('1', 200 * 1024), 'tango: length line too long')
	attack('truncated payload', '10\n{"pi', 'tango: connection closed in the middle of a message', true)
	attack('stalled payload', '10\n{"pi', 'tango: message incomplete (the payload stalled)')
	attack('stalled length line', '12', 'tango: message incomplete (the length line stalled)')
	attack('truncated length line', '12', 'tango: connection closed in the middle of a message', true)
	attack('unparsable', frame('{"ping"'), "cannot parse byte 8: unexpected end")

	-- requests that parse but make no sense get an error response, not a closed connection
	local skt = assert(loop.connect('127.0.0.1', port))
	skt:settimeout(5)
	for _, request in ipairs{'42', '{}', '{42}', '"ping"', '{"ping",[100000]=1}'} do
		assert(skt:send(frame(request)))
		local len = tonumber(skt:receive('*l'))
		local resp = tango.unserialize(skt:receive(len))
		T.ok(resp[1] == false and resp[2]:find('malformed request', 1, true), request .. ': error response')
	end
	assert(skt:send(frame('{"ping"}')))
	T.eq(skt:receive('*l'), '13', 'response length line')
	T.eq(skt:receive(13), '{true,"pong"}', 'response text as tango 0.2 writes it')
	skt:close()
	T.eq(#errors, 14, 'every attack reported, nothing else')
	tango.close(good)
	srv:close()
end)

T.run('tango client facing hostile answers', function()
	local target = os.tmpname()
	os.remove(target)
	local answers = {
		'{true, os.execute("touch ' .. target .. '")}',
		'{(function() os.execute("touch ' .. target .. '") end)()}',
		'{true, [100000] = 1}',
		'"not a table"',
	}
	for _, answer in ipairs(answers) do
		local fake = assert(loop.newserver('127.0.0.1', 0, function(skt)
			local len = tonumber(skt:receive('*l'))
			skt:receive(len)
			skt:send(#answer .. '\n' .. answer)
			skt:receive('*a')
			skt:close()
		end))
		local _, port = fake:getsockname()
		local con = assert(tango.client.connect{address = '127.0.0.1', port = port})
		local ok, err = pcall(con.anything)
		T.ok(not ok and err:find('tango: malformed response', 1, true), 'refused: ' .. tostring(err))
		tango.close(con)
		fake:close()
	end
	T.eq(io.open(target), nil, 'no answer ever ran the code')

	-- a request over the client's own limit is refused before it is sent
	local srv = assert(tango.server.new{address = '127.0.0.1', port = 0, functab = {echo = function(x) return x end}})
	local _, port = srv:getsockname()
	local con = assert(tango.client.connect{address = '127.0.0.1', port = port, maxsize = 100})
	local ok, err = pcall(con.echo, string.rep('x', 100))
	T.ok(not ok and err:find('tango: request of 111 bytes exceeds the limit of 100 bytes', 1, true), tostring(err))
	T.eq(con.echo('small'), 'small', 'the connection is still usable')
	tango.close(con)
	srv:close()
end)

T.run('tango refuses to expose _G on a non-loopback address', function()
	local before = loop.stats().registrations
	T.raises('exposing _G on address 0.0.0.0 (not loopback) needs the option allow_public_globals = true',
		tango.server.new, {address = '*', port = 0})
	T.raises('exposing _G on address 0.0.0.0', tango.server.new, {interface = '0.0.0.0', port = 0, functab = _G})
	T.raises('tango.server.loop: exposing _G', tango.server.loop, {interface = '*', port = 0})
	T.eq(loop.stats().registrations, before, 'the refused sockets were closed')
	local srv = assert(tango.server.new{port = 0})
	local ip = srv:getsockname()
	T.ok(ip == '127.0.0.1' or ip == '::1', 'the default address is loopback: ' .. tostring(ip))
	srv:close()
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
