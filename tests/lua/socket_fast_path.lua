-- The FFI fast path of receive and send (src/lua/tcp_ffi.rs): the answers it gives are the
-- methods' answers, with the JIT on and off, and it never touches a socket other than
-- the asocket's own, whatever its fields say.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local A = require'socketloop.asocket'
local pair, await = N.pair, N.await

local function patterns()
	local c, s = pair()
	assert(c:send('a\r\nbc\r\r\n12345' .. 'tail'))
	T.eq(s:receive(), 'a', 'receive() drops the CR')
	T.eq(s:receive('*l'), 'bc', "receive('*l') drops every CR")
	T.eq(s:receive(0), '', 'receive(0)')
	T.eq(s:receive(2), '12', 'receive(2)')
	T.eq(s:receive(3), '345', 'receive(3)')
	c:close()
	local data, err, partial = s:receive()
	T.eq(data, nil, 'a line cut short by close')
	T.eq(err, 'closed', 'cut short: closed')
	T.eq(partial, 'tail', 'cut short: the partial line')
	s:close()
	data, err = s:receive()
	T.eq(err, 'closed', 'receive after close')
	local last
	last, err = s:send('x')
	T.eq(last, nil, 'send after close')
	T.eq(err, 'closed', 'send after close: closed')
end

T.run('patterns and failures, JIT on', patterns)

T.run('patterns and failures, JIT off', function()
	jit.off()
	local ok, err = pcall(patterns)
	jit.on()
	assert(ok, err)
end)

T.run('a send bigger than the socket buffer goes on where the fast path stopped', function()
	local c, s = pair(true)
	local big = string.rep('0123456789abcdef', 2 ^ 18) -- 4 MiB
	local got = N.spawn(function() return c:send(big) end)
	T.eq(s:receive(#big) == big, true, 'every byte arrives, in order')
	await(got, 'the sender')
	T.eq(got()[1], #big, 'send returns the last index')
	c:close()
	s:close()
end)

T.run('a stale or forged token never reaches another socket', function()
	local c, s = pair()
	local c2, s2 = pair()
	assert(c2:send('for s2\n'))
	s:getsocket():close() -- behind the asocket's back: its token is stale
	local data, err = s:receive()
	T.eq(data, nil, 'receive on the closed socket')
	T.eq(err, 'closed', 'the closed socket says closed')
	s[A.TOKEN] = s2[A.TOKEN] -- the fast path is named s2's token, with s's socket
	data, err = s:receive()
	T.eq(err, 'closed', 'a forged token: still our own closed socket')
	T.eq(s2:receive(), 'for s2', "the other socket's line is untouched")
	c:close()
	c2:close()
	s2:close()
end)

T.run('a socket field that is not our socket is refused, not read', function()
	local c, s = pair()
	assert(c:send('line\n'))
	local own = s[A.SOCKET]
	s[A.SOCKET] = io.stdout
	local ok = pcall(s.receive, s)
	T.eq(ok, false, 'receive through a file handle fails as a Lua error')
	s[A.SOCKET] = own
	T.eq(s:receive(), 'line', 'the line is still there')
	c:close()
	s:close()
end)

T.finish()
