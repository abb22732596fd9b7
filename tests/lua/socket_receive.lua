-- asocket:receive: every pattern ('*l', 'l', '*a', 'a', a count, a numeric string),
-- the prefix, the partial result on 'closed' and on 'timeout', and misuse.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local pair = N.pair
-- Waits (bounded) until cond() holds, letting the other threads run.
local function await(cond, what) return N.await(cond, what, 2000) end

-- Sends `pieces` one at a time from another thread; each piece after the first is sent
-- only once the reader has buffered the previous one (so the reader sees it split).
local function feed(from, to, pieces, close_after)
	local done = false
	loop.newthread(function()
		for i, piece in ipairs(pieces) do
			if i > 1 then await(function() return to:dirty() end, 'the reader to buffer piece ' .. (i - 1)) end
			assert(from:send(piece))
		end
		if close_after then from:close() end
		done = true
	end)
	return function() return done end
end

T.run('receive *l and l: lines, CRs dropped, lines split across sends', function()
	local c, s = pair()
	assert(c:send('one\r\ntw\ro\n\nlast\r\n'))
	T.eq(s:receive('*l'), 'one', 'CRLF line')
	T.eq(s:receive('l'), 'two', 'CR inside the line dropped')
	T.eq(s:receive(), '', 'empty line (default pattern)')
	T.eq(s:receive('*l'), 'last', 'CRLF at the end')
	T.eq(s:dirty(), false, 'nothing left buffered')
	-- A line arriving in three pieces while the reader waits.
	local done = feed(c, s, {'hel', 'lo wor', 'ld\r', '\nnext\n'})
	T.eq(s:receive('*l'), 'hello world', 'split line')
	T.eq(s:receive('l'), 'next', 'the line after the split one')
	T.ok(done(), 'the feeder finished')
	-- A long line (several reads) followed by a short one.
	local long = ('0123456789abcdef'):rep(20000) -- 320 000 bytes
	loop.newthread(function() assert(c:send(long .. '\nshort\n')) end)
	local got = s:receive('*l')
	T.eq(got and #got, #long, 'long line length')
	T.ok(got == long, 'long line content')
	T.eq(s:receive('*l'), 'short', 'line after the long one')
	c:close()
	s:close()
end)

T.run('receive *a and a', function()
	local c, s = pair()
	local done = feed(c, s, {'abc', 'def\r\n', 'ghi'}, true)
	T.eq(s:receive('*a'), 'abcdef\r\nghi', '*a returns everything until close, verbatim')
	T.ok(done(), 'the feeder finished')
	local data, err, partial = s:receive('*a')
	T.eq(data, nil, '*a after everything was read')
	T.eq(err, 'closed', '*a with nothing left says closed')
	T.eq(partial, '', 'no partial')
	s:close()

	c, s = pair()
	c:close()
	data, err = s:receive('a')
	T.eq(data, nil, "'a' on a connection closed with nothing")
	T.eq(err, 'closed')
	s:close()

	c, s = pair()
	local big = {}
	for i = 1, 50000 do big[i] = ('%06d\n'):format(i) end
	big = table.concat(big)
	loop.newthread(function()
		assert(c:send(big))
		c:close()
	end)
	-- a line first, then the rest with 'a'
	T.eq(s:receive('*l'), '000001', 'first line')
	data = s:receive('a')
	T.eq(data and #data, #big - 7, "'a' length")
	T.ok(data == big:sub(8), "'a' content")
	s:close()
end)

T.run('receive a byte count, across packets', function()
	local c, s = pair()
	local done = feed(c, s, {'ab', 'cd', 'efgh', 'ij'})
	T.eq(s:receive(5), 'abcde', 'five bytes from three packets')
	T.eq(s:receive(0), '', 'zero bytes')
	T.eq(s:receive(3), 'fgh', 'the next three (buffered)')
	T.eq(s:receive(2.0), 'ij', 'a float count')
	T.ok(done(), 'the feeder finished')
	-- a numeric string is a count
	assert(c:send('12345678\n'))
	T.eq(s:receive('3'), '123', "pattern '3'")
	T.eq(s:receive('2'), '45', "pattern '2'")
	T.eq(s:receive(), '678', 'the rest of the line')
	-- bytes are returned verbatim, CRs and LFs included
	assert(c:send('\r\n\r\n'))
	T.eq(s:receive(4), '\r\n\r\n', 'CR LF kept by a count')
	-- a large count spanning many reads
	local big = ('x'):rep(100000) .. ('y'):rep(100000)
	loop.newthread(function() assert(c:send(big)) end)
	local got = s:receive(#big)
	T.ok(got == big, 'a 200000-byte count')
	T.eq(s:dirty(), false, 'nothing left over')
	c:close()
	s:close()
end)

T.run('receive with a prefix', function()
	local c, s = pair()
	assert(c:send('line\nabcdefgh'))
	T.eq(s:receive('*l', 'pre-'), 'pre-line', 'prefix on a line')
	-- As LuaSocket: a count includes the prefix (so a partial can be passed back).
	T.eq(s:receive(5, 'XY'), 'XYabc', 'count 5 with a 2-byte prefix')
	T.eq(s:receive(2, 'PQR'), 'PQR', 'a prefix longer than the count reads nothing')
	T.eq(s:receive(3, ''), 'def', 'empty prefix')
	T.eq(s:receive(2, 12), '12', 'a numeric prefix')
	T.eq(s:receive(2), 'gh', 'nothing was lost')
	c:close()
	T.eq(s:receive('*a', 'P'), nil, "'*a' with a prefix and nothing")
	s:close()
end)

T.run('partial result on closed', function()
	local c, s = pair()
	assert(c:send('no newline'))
	c:close()
	local data, err, partial = s:receive('*l')
	T.eq(data, nil, 'no line')
	T.eq(err, 'closed', 'err')
	T.eq(partial, 'no newline', 'partial line')
	T.eq(s:dirty(), false, 'partial consumed')
	s:close()

	c, s = pair()
	assert(c:send('cr\r\nno\r new\rline\r'))
	c:close()
	T.eq(s:receive(), 'cr', 'a line')
	data, err, partial = s:receive('*l')
	T.eq(err, 'closed', 'closed on an unfinished line')
	T.eq(partial, 'no newline', 'the partial line has no CRs')
	T.eq(s:dirty(), false, 'partial consumed')
	s:close()

	c, s = pair()
	local done = feed(c, s, {'abc', 'de'}, true)
	data, err, partial = s:receive(10, '>')
	T.eq(data, nil, 'count not reached')
	T.eq(err, 'closed')
	T.eq(partial, '>abcde', 'partial with prefix')
	T.ok(done(), 'the feeder finished')
	data, err, partial = s:receive('*l', 'P')
	T.eq(err, 'closed', 'again')
	T.eq(partial, 'P', 'nothing left but the prefix')
	s:close()
end)

T.run('partial result on timeout is consumed', function()
	local c, s = pair()
	s:settimeout(0.05)
	assert(c:send('abc'))
	local data, err, partial = s:receive('*l')
	T.eq(data, nil, 'no line yet')
	T.eq(err, 'timeout', 'err')
	T.eq(partial, 'abc', 'partial')
	T.eq(s:dirty(), false, 'the partial was consumed')
	assert(c:send('def\nghi'))
	T.eq(s:receive('*l'), 'def', 'the partial is not returned again')
	data, err, partial = s:receive(6, 'XY') -- wants 4 more bytes, 3 are there
	T.eq(err, 'timeout', 'count times out')
	T.eq(partial, 'XYghi', 'prefix and partial')
	-- The LuaSocket idiom: pass the partial back as the prefix.
	assert(c:send('jkl'))
	T.eq(s:receive(6, partial), 'XYghij', 'count resumed with the partial as prefix')
	T.eq(s:receive(2), 'kl', 'the rest')
	-- a line resumed the same way
	assert(c:send('part'))
	data, err, partial = s:receive('*l')
	T.eq(partial, 'part', 'partial line')
	assert(c:send('ial\n'))
	T.eq(s:receive('*l', partial), 'partial', 'line resumed with the partial')
	-- as LuaSocket's, a line's partial result has its CRs dropped already
	assert(c:send('a\rb'))
	data, err, partial = s:receive('*l')
	T.eq(err, 'timeout', 'line with a CR times out')
	T.eq(partial, 'ab', 'the CR is not in the partial line')
	assert(c:send('c\r\n'))
	T.eq(s:receive('*l', partial), 'abc', 'the resumed line has no CR')
	c:close()
	s:close()
end)

T.run('invalid patterns and prefixes raise', function()
	local c, s = pair()
	T.raises("bad argument #1 to 'receive'", s.receive, s, '*x')
	T.raises("bad argument #1 to 'receive'", s.receive, s, 'x')
	T.raises("bad argument #1 to 'receive'", s.receive, s, -1)
	T.raises("bad argument #1 to 'receive'", s.receive, s, {})
	T.raises("bad argument #1 to 'receive'", s.receive, s, true)
	T.raises('invalid receive pattern', s.receive, s, '*x')
	T.raises("bad argument #2 to 'receive'", s.receive, s, '*l', {})
	-- the socket still works after the errors
	assert(c:send('fine\n'))
	T.eq(s:receive(), 'fine', 'still usable')
	c:close()
	s:close()
end)

T.run('receive on a closed socket', function()
	local c, s = pair()
	s:close()
	local data, err = s:receive()
	T.eq(data, nil)
	T.eq(err, 'closed', 'receive after close')
	data, err = s:receive(10)
	T.eq(err, 'closed', 'count after close')
	c:close()
end)

T.run('a receive in a thread that cannot yield there raises, and leaves nothing behind', function()
	local c, s = pair()
	s:settimeout(0.05)
	-- A gsub callback is called from C: a coroutine cannot yield from it.
	local ok, err = pcall(string.gsub, 'x', 'x', function() return (s:receive('*l')) end)
	T.eq(ok, false, 'the receive raised')
	T.ok(tostring(err):find('yield', 1, true), 'and says why: ' .. tostring(err))
	-- No wait was left registered (the next receive is not 'busy') and no timer (the
	-- next one does not time out when the first one's 0.05 s are up).
	s:settimeout(10)
	local got
	loop.newthread(function() got = {s:receive('*l')} end)
	loop.sleep(0.2)
	T.eq(got, nil, 'the new receive still waits')
	assert(c:send('late\n'))
	await(function() return got end, 'the receive')
	T.eq(got and got[1], 'late', 'and gets the line')
	c:close()
	s:close()
end)

N.finish()
