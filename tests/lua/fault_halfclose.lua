-- Faults: half-closed connections. A client that shuts down its sending side still gets
-- the server's answer (and a trailing line without LF arrives as the partial result); a
-- server that shuts down its sending side still receives what the client sends; when
-- both do, each reads the rest and then closed.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local await = N.await

T.run('the client half-closes: the answer still arrives', function()
	local seen = {}
	local srv = assert(loop.newserver('127.0.0.1', 0, function(skt)
		skt:settimeout(10)
		local lines, bytes = 0, 0
		while true do
			local line, err, partial = skt:receive('*l')
			if not line then
				seen[#seen + 1] = {err = err, partial = partial, lines = lines, bytes = bytes}
				break
			end
			lines, bytes = lines + 1, bytes + #line
		end
		-- the peer half-closed: answering still works
		assert(skt:send(('%d lines, %d bytes, then %q\n'):format(lines, bytes, seen[#seen].partial)))
		skt:close()
	end))
	local _, port = srv:getsockname()
	local c = assert(loop.connect('127.0.0.1', port))
	c:settimeout(10)
	local want_bytes = 0
	for i = 1, 1000 do
		local line = ('line %d'):format(i)
		want_bytes = want_bytes + #line
		assert(c:send(line .. '\n'))
	end
	assert(c:send('tail without LF'))
	T.eq(c:shutdown('send'), 1, 'shutdown send')
	local last, err = c:send('more')
	T.eq(last, nil, 'no sending after shutdown send')
	T.eq(err, 'closed', 'a send after shutdown send says closed')
	local reply = c:receive('*l')
	T.eq(reply, ('1000 lines, %d bytes, then "tail without LF"'):format(want_bytes), 'the answer after the half-close')
	local data, rerr = c:receive('*l')
	T.eq(data, nil, 'then nothing')
	T.eq(rerr, 'closed', 'then closed')
	T.eq(#seen, 1, 'one connection seen')
	T.eq(seen[1].err, 'closed', 'the server saw closed after the last line')
	c:close()
	srv:close()
end)

T.run('the server half-closes: the client still sends', function()
	local got = {}
	local finished = false
	local srv = assert(loop.newserver('127.0.0.1', 0, function(skt)
		skt:settimeout(10)
		assert(skt:send('hello\n'))
		T.eq(skt:shutdown('send'), 1, 'server shutdown send')
		while true do
			local line = skt:receive('*l')
			if not line then break end
			got[#got + 1] = line
		end
		finished = true
		skt:close()
	end))
	local _, port = srv:getsockname()
	local c = assert(loop.connect('127.0.0.1', port))
	c:settimeout(10)
	T.eq(c:receive('*a'), 'hello\n', "'*a' ends at the server's half-close")
	for i = 1, 100 do assert(c:send(('after %d\n'):format(i))) end
	c:close()
	await(function() return finished end, 'the server to read everything')
	T.eq(#got, 100, 'every line sent after the half-close arrived')
	T.eq(got[100], 'after 100', 'in order')
	srv:close()
end)

T.run('half-close by both: each side reads the rest, then closed', function()
	local c, s = N.pair()
	assert(c:send('from c'))
	assert(s:send('from s'))
	c:shutdown('send')
	s:shutdown('send')
	T.eq(c:receive('*a'), 'from s', 'c reads what s sent')
	T.eq(s:receive('*a'), 'from c', 's reads what c sent')
	local d1, e1 = c:receive('*a')
	T.eq(d1, nil, 'nothing more for c')
	T.eq(e1, 'closed', 'closed for c')
	c:close()
	s:close()
end)

N.finish()
