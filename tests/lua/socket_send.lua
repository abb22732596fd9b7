-- asocket:send: the i and j arguments (negative too) and the index it returns, a large
-- send that has to wait for the peer (the wantwrite path), a send that times out and is
-- resumed from the index it returned, and misuse.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local pair = N.pair

-- Data where every 8-byte block differs, so a lost, repeated or reordered block shows.
local made = {}
local function pattern_data(size)
	if not made[size] then
		local blocks = {}
		for i = 1, math.ceil(size / 8) do blocks[i] = ('%08x'):format(i) end
		made[size] = table.concat(blocks):sub(1, size)
	end
	return made[size]
end

T.run('send with i and j returns the last index sent', function()
	local c, s = pair()
	local cases = {
		-- data, i, j, expected return, expected bytes on the wire
		{'hello world', nil, nil, 11, 'hello world'},
		{'hello world', 7, nil, 11, 'world'},
		{'abcdef', 2, 4, 4, 'bcd'},
		{'abcdef', -3, nil, 6, 'def'},
		{'abcdef', -3, -2, 5, 'de'},
		{'abcdef', 1, -1, 6, 'abcdef'},
		{'abcdef', 2, -3, 4, 'bcd'},
		{'abcdef', -100, 2, 2, 'ab'},
		{'abcdef', 0, 3, 3, 'abc'},
		{'abcdef', 3, 100, 6, 'cdef'},
		{'abcdef', 4, 2, 3, ''},
		{'abcdef', 10, nil, 9, ''},
		{'abcdef', 1, -10, 0, ''},
		{'', nil, nil, 0, ''},
		{'abcdef', '2', '3', 3, 'bc'},
	}
	for n, case in ipairs(cases) do
		local data, i, j, want, wire = unpack(case)
		local last, err = c:send(data, i, j)
		T.eq(last, want, ('case %d: send(%q, %s, %s)'):format(n, data, tostring(i), tostring(j)))
		T.eq(err, nil, 'case ' .. n .. ' error')
		assert(c:send('|'))
		T.eq(s:receive(#wire + 1), wire .. '|', 'case ' .. n .. ' bytes sent')
	end
	-- numbers are sent as strings, as LuaSocket does
	T.eq(c:send(12345), 5, 'a number is sent as a string')
	T.eq(s:receive(5), '12345', 'number bytes')
	c:close()
	s:close()
end)

T.run('send of a non-string raises', function()
	local c, s = pair()
	T.raises("bad argument #1 to 'send'", c.send, c, {})
	T.raises("bad argument #1 to 'send'", c.send, c, nil)
	T.raises("bad argument #1 to 'send'", c.send, c, true)
	T.raises("bad argument #1 to 'send'", c.send, c, function() end)
	T.raises("'send'", c.send, c, 'abc', {})
	T.raises("'send'", c.send, c, 'abc', 1, {})
	T.eq(c:send('ok\n'), 3, 'still usable')
	T.eq(s:receive(), 'ok')
	c:close()
	s:close()
end)

T.run('8 MB send while the peer reads slowly (wantwrite)', function()
	local c, s = pair(true)
	local size = 8 * 1024 * 1024
	local data = pattern_data(size)
	local sending, read_while_sending = false, 0
	local chunks, reader_done = {}, false
	loop.newthread(function()
		local total = 0
		while total < size do
			local want = math.min(65536, size - total)
			local got, err = s:receive(want)
			if not got then
				T.ok(false, 'reader: ' .. tostring(err))
				break
			end
			chunks[#chunks + 1] = got
			total = total + #got
			if sending then read_while_sending = read_while_sending + #got end
			loop.sleep(0.0005) -- a slow reader
		end
		reader_done = true
	end)
	sending = true
	local last, err, sent = c:send(data)
	sending = false
	T.eq(last, size, 'send returned the last index')
	T.eq(err, nil, 'send error ' .. tostring(err) .. ' after ' .. tostring(sent))
	T.ok(read_while_sending > 0, 'the reader ran while send was parked')
	for _ = 1, 5000 do
		if reader_done then break end
		loop.sleep(0.001)
	end
	T.ok(reader_done, 'the reader finished')
	local got = table.concat(chunks)
	T.eq(#got, size, 'bytes received')
	T.ok(got == data, 'received byte for byte what was sent')
	local received, sent_stat = s:getstats()
	T.eq(received, size, "receiver's byte count")
	local _, sent_total = c:getstats()
	T.eq(sent_total, size, "sender's byte count")
	c:close()
	s:close()
end)

T.run('a send that times out returns the last index; resuming from it loses nothing', function()
	local c, s = pair(true)
	local size = 8 * 1024 * 1024
	local data = pattern_data(size)
	c:settimeout(0.05)
	local last, err, sent = c:send(data, 3)
	T.eq(last, nil, 'nothing reads: send cannot finish')
	T.eq(err, 'timeout', 'err')
	T.ok(type(sent) == 'number' and sent >= 2 and sent < size, 'partial index ' .. tostring(sent))
	-- now read it all and send the rest from where it stopped
	local chunks, total = {}, 0
	local want = size - 2
	loop.newthread(function()
		while total < want do
			local got, rerr = s:receive(math.min(65536, want - total))
			if not got then T.ok(false, 'reader: ' .. tostring(rerr)) break end
			chunks[#chunks + 1] = got
			total = total + #got
		end
	end)
	c:settimeout(10)
	T.eq(c:send(data, sent + 1), size, 'the rest sent')
	for _ = 1, 5000 do
		if total >= want then break end
		loop.sleep(0.001)
	end
	T.ok(table.concat(chunks) == data:sub(3), 'the stream is data:sub(3), byte for byte')
	c:close()
	s:close()
end)

T.run('send on a closed socket', function()
	local c, s = pair()
	c:close()
	local last, err = c:send('x')
	T.eq(last, nil)
	T.eq(err, 'closed', 'send after close')
	s:close()
end)

N.finish()
