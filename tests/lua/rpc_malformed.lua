-- Bad input to socketloop.rpc, from a raw socket to a real server and from a fake
-- server to a real client: each gives a clear error and closes that connection, and the
-- server goes on serving its other clients.
local loop = require'socketloop'
local rpc = require'socketloop.rpc'
local T = require'testlib'
local N = require'testnet'

local W = require'rpcwire'

local char = string.char
local u32, message, str = W.u32, W.message, W.str
local PING = W.call(1, 'ping')

-- Waits (bounded) until cond() holds: up to 1000 steps of 5 ms.
local function wait_until(cond, what) return N.await(cond, what, 1000, 0.005) end

T.run('rpc server facing bad input', function()
	local errors = {}
	local api = {ping = function() return 'pong' end}
	local server = assert(rpc.newserveronly('127.0.0.1', 0, {
		expose = api, maxsize = 1000, maxdepth = 20, message_timeout = 0.2,
		onerror = function(err) errors[#errors + 1] = err end,
	}))
	local _, port = server:getsockname()
	local good = assert(rpc.newclient('127.0.0.1', port, {expose = {}}))

	-- sends `bytes` (then closes its side if `close`), expects the server to close the
	-- connection and report an error containing `want`
	local function attack(name, bytes, want, close)
		local n = #errors
		local data, err = N.send_raw(port, bytes, close)
		T.ok(data == nil and err == 'closed' or data == '', name .. ': connection closed (' .. tostring(err) .. ')')
		wait_until(function() return #errors > n end, name .. ': the report')
		local got = errors[n + 1] or ''
		T.ok(got:find(want, 1, true), name .. ': error "' .. got .. '" says "' .. want .. '"')
		T.eq(good:call('ping'), 'pong', name .. ': the server still serves others')
	end

	attack('unknown type', '\7\0\0\0\0\0', 'malformed header (unknown message type 7)')
	attack('too large', '\0\1' .. u32(1001), 'message of 1001 bytes exceeds the limit of 1000 bytes')
	attack('truncated header', '\0\1\0', 'connection closed in the middle of a message', true)
	attack('truncated payload', '\0\1' .. u32(100) .. 'abc', 'connection closed in the middle of a message', true)
	attack('stalled payload', '\0\1' .. u32(100) .. 'abc', 'message incomplete after 0.2 seconds')
	attack('stalled header', '\0\1\0', 'message incomplete after 0.2 seconds')
	attack('bad tag', message(0, 1, '\9\0'), 'malformed payload (unknown value tag 9)')
	attack('no name', message(0, 1, '\0\0'), 'malformed payload (no procedure name)')
	attack('string past the end', message(0, 1, '\5\100abc'), 'malformed payload (count 100 larger than the payload allows)')
	attack('truncated float', message(0, 1, str('ping') .. '\1\4\1\2'), 'malformed payload (truncated value)')
	attack('bytes after the values', message(0, 1, str('ping') .. '\0\0'), 'malformed payload (bytes after the last value)')
	attack('huge table counts', message(0, 1, str('ping') .. '\1\6\0\255\255\255\255'),
		'malformed payload (table counts larger than the payload allows)')
	attack('nil key', message(0, 1, str('ping') .. '\1\6\0\0\0\0\1\0\2'), 'malformed payload (table key is nil)')
	attack('too many values', message(0, 1, str('ping') .. '\255\127' .. string.rep('\0', 900)),
		'malformed payload (more than 4096 values')
	local deep = string.rep('\6\1\0\0\0\0', 25) .. '\0'
	attack('too deep', message(0, 1, str('ping') .. '\1' .. deep), 'malformed payload (tables nested deeper than 20 levels)')
	attack('overlong integer', message(0, 1, str('ping') .. '\1\3' .. string.rep('\255', 10) .. '\1'),
		'malformed payload (integer out of range)')
	attack('answer to nothing', message(1, 9, '\0\0'), 'response to no call in flight (sequence number 9)')

	-- two calls with the same sequence number in flight
	api.hold = function() loop.suspend() end
	attack('sequence reused', message(0, 3, str('hold') .. '\0') .. message(0, 3, str('hold') .. '\0'),
		'two calls in flight with sequence number 3')

	-- a well-formed raw call still works, and the answer is what docs/protocol.md says
	local skt = assert(loop.connect('127.0.0.1', port))
	skt:settimeout(5)
	assert(skt:send(PING))
	T.eq(skt:receive(6), '\1\1' .. u32(8), 'response header: type 1, seq 1, 8 bytes')
	T.eq(skt:receive(8), '\0\1' .. str('pong'), 'status 0, one value, "pong"')
	assert(skt:send(message(0, 2, str('nothing') .. '\0')))
	T.eq(skt:receive(8), '\1\2' .. u32(2) .. '\2\0', 'status 2 for a missing procedure')
	skt:close()

	-- a disconnect between messages is no error
	local n = #errors
	skt = assert(loop.connect('127.0.0.1', port))
	assert(skt:send(PING))
	skt:receive(14)
	skt:close()
	T.eq(good:call('ping'), 'pong')
	T.eq(#errors, n, 'a clean disconnect is not reported')

	good:close()
	server:close()
end)

T.run('rpc default payload limit is 16 MiB', function()
	local errors = {}
	local server = assert(rpc.newserveronly('127.0.0.1', 0, {
		expose = {}, onerror = function(err) errors[#errors + 1] = err end,
	}))
	local _, port = server:getsockname()
	local skt = assert(loop.connect('127.0.0.1', port))
	assert(skt:send('\0\1' .. u32(16 * 1024 * 1024 + 1)))
	skt:settimeout(5)
	T.eq(select(2, skt:receive('*a')), 'closed', 'over 16 MiB: closed')
	skt:close()
	wait_until(function() return #errors > 0 end, 'the report')
	T.ok((errors[1] or ''):find('exceeds the limit of 16777216 bytes', 1, true), tostring(errors[1]))
	-- exactly 16 MiB passes the header check: the server waits for the payload
	skt = assert(loop.connect('127.0.0.1', port))
	assert(skt:send('\0\1' .. u32(16 * 1024 * 1024) .. 'partial'))
	skt:settimeout(0.05)
	T.eq(select(2, skt:receive(1)), 'timeout', '16 MiB header accepted')
	skt:close()
	server:close()
end)

-- A fake server: answers the first call it reads with `reply(seq)`, then waits for the
-- client to close, or closes at once if reply returns true after the bytes.
local function fake_server(reply)
	local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
		local h = skt:receive(6)
		if not h then return skt:close() end
		local size = h:byte(3) * 2^24 + h:byte(4) * 2^16 + h:byte(5) * 2^8 + h:byte(6)
		skt:receive(size)
		local bytes, hang_up = reply(h:byte(2))
		skt:send(bytes)
		if not hang_up then skt:receive('*a') end
		skt:close()
	end))
	local _, port = server:getsockname()
	return server, port
end

T.run('rpc client facing bad answers', function()
	local function answer(name, reply, want, options)
		local server, port = fake_server(reply)
		options = options or {}
		options.expose = {}
		options.onerror = function() end
		local s = assert(rpc.newclient('127.0.0.1', port, options))
		local r, err = s:call('anything', 1)
		T.eq(r, nil, name .. ': no result')
		T.ok(type(err) == 'string' and err:find(want, 1, true), name .. ': "' .. tostring(err) .. '" says "' .. want .. '"')
		T.eq(select(2, s:call('anything')), 'closed', name .. ': session closed')
		server:close()
	end
	answer('unknown status', function(seq) return message(1, seq, '\9\0') end,
		'rpc: malformed response (unknown status 9)')
	answer('malformed values', function(seq) return message(1, seq, '\0\1\8') end,
		'rpc: malformed payload (unknown value tag 8)')
	answer('wrong sequence number', function(seq) return message(1, (seq + 1) % 256, '\0\0') end,
		'rpc: response to no call in flight')
	answer('oversized answer', function(seq) return message(1, seq, '\0\1' .. '\5\200\1' .. string.rep('x', 200)) end,
		'rpc: message of 205 bytes exceeds the limit of 100 bytes', {maxsize = 100})
	answer('disconnect mid-answer', function(seq) return message(1, seq, '\0\1\5\50'):sub(1, 8), true end, 'closed')
	answer('stalled answer', function(seq) return '\1' .. char(seq) .. u32(10) .. 'abc' end,
		'rpc: message incomplete after 0.1 seconds', {message_timeout = 0.1})
end)

T.run('rpc oversized messages are refused before sending', function()
	local server = assert(rpc.newserveronly('127.0.0.1', 0, {
		expose = {echo = function(...) return ... end, big = function() return string.rep('x', 2000) end},
		maxsize = 1000,
	}))
	local _, port = server:getsockname()
	local s = assert(rpc.newclient('127.0.0.1', port, {expose = {}, maxsize = 1000}))
	T.raises("bad argument #2 to 'call' (payload larger than the limit of 1000 bytes)", s.call, s, 'echo', string.rep('x', 1000))
	T.eq(#s:call('echo', string.rep('x', 900)), 900, 'under the limit')
	local ok, err = pcall(s.call, s, 'big')
	T.ok(not ok and err:find('results could not be serialized (payload larger than the limit of 1000 bytes)', 1, true),
		'too large results: ' .. tostring(err))
	T.eq(s:call('echo', 'ok'), 'ok', 'session still usable')
	s:close()
	server:close()
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
