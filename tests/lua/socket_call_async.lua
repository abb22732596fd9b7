-- asocket:call_async(func, ...): calls func again and again while it says 'wantread' or
-- 'wantwrite', parking the thread on that readiness in between (how LuaSec handshakes
-- run); returns func's results; timeouts, close, failures and misuse.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local pair, await = N.pair, N.await

T.run("wantread twice, then the function's results", function()
	local c, s = pair()
	local raw = s:getsocket() -- our socket: its receive never blocks, it says 'wantread'
	local log, calls, wantreads = {}, 0, 0
	-- a non-blocking read of 5 bytes, as a handshake step would do
	local function step(tag)
		calls = calls + 1
		log[#log + 1] = 'call' .. calls
		local data, err = raw:receive(5)
		if data then return data, tag, 'third' end
		if err == 'wantread' then wantreads = wantreads + 1 end
		return nil, err
	end
	-- the data arrives in two pieces, each once the previous call has parked
	loop.newthread(function()
		await(function() return calls >= 1 end, 'the first call')
		log[#log + 1] = 'send1'
		c:send('ab')
		await(function() return s:dirty() end, 'the second call to buffer the first piece')
		log[#log + 1] = 'send2'
		c:send('cde')
	end)
	local r1, r2, r3 = s:call_async(step, 'tag')
	T.eq(r1, 'abcde', 'the data')
	T.eq(r2, 'tag', "func's second result (its argument)")
	T.eq(r3, 'third', "func's third result")
	T.eq(wantreads, 2, 'wantread twice')
	T.eq(calls, 3, 'three calls')
	T.eq(table.concat(log, ' '), 'call1 send1 call2 send2 call3',
		'the thread parked between the calls while the other one ran')
	-- a single result comes back as one value
	T.eq(select('#', s:call_async(function() return 'x' end)), 1, 'one result')
	c:close()
	s:close()
end)

T.run('wantwrite', function()
	local c, s = pair(true)
	local raw = c:getsocket()
	local size = 4 * 1024 * 1024
	local data = ('abcdefgh'):rep(size / 8)
	local i, wantwrites = 1, 0
	local got, total = {}, 0
	loop.newthread(function()
		while total < size do
			local chunk = s:receive(math.min(65536, size - total))
			if not chunk then break end
			got[#got + 1] = chunk
			total = total + #chunk
		end
	end)
	local function step()
		local last, err, sent = raw:send(data, i)
		if last then return last end
		if err == 'wantwrite' then
			wantwrites = wantwrites + 1
			i = sent + 1
		end
		return nil, err
	end
	T.eq(c:call_async(step), size, 'sent everything')
	T.ok(wantwrites >= 1, 'had to wait for writability: ' .. wantwrites)
	await(function() return total >= size end, 'the reader')
	T.ok(table.concat(got) == data, 'received byte for byte')
	c:close()
	s:close()
end)

T.run('failures, false, timeout, close', function()
	local c, s = pair()
	local a, b = s:call_async(function() return nil, 'handshake failed' end)
	T.eq(a, nil, 'failure')
	T.eq(b, 'handshake failed', 'failure message passed through')
	a, b = s:call_async(function() return false, 'no' end)
	T.eq(a, false, 'false passed through')
	T.eq(b, 'no', 'and its message')
	a, b = s:call_async(function(x, y) return x + y end, 2, 3)
	T.eq(a, 5, 'arguments passed')
	-- a function that raises: the error reaches the caller
	local ok, err = pcall(s.call_async, s, function() error('boom', 0) end)
	T.eq(ok, false, 'raised')
	T.eq(err, 'boom', 'the error')
	-- timeout
	s:settimeout(0.05)
	local calls = 0
	a, b = s:call_async(function() calls = calls + 1 return nil, 'wantread' end)
	T.eq(a, nil, 'timed out')
	T.eq(b, 'timeout', 'timeout')
	T.ok(calls >= 1, 'called')
	s:settimeout(10)
	-- close from another thread
	local res
	loop.newthread(function()
		res = {s:call_async(function() return nil, 'wantread' end)}
	end)
	T.eq(res, nil, 'parked')
	s:close()
	await(function() return res end, 'the parked call')
	T.eq(res[1], nil, 'woken')
	T.eq(res[2], 'closed', 'closed')
	T.raises("bad argument #1 to 'call_async'", c.call_async, c, 'not a function')
	c:close()
end)

T.run('call_async outside a loop thread blocks on readiness', function()
	local c, s = pair()
	local co = coroutine.create(function()
		local raw = s:getsocket()
		local calls = 0
		local r = s:call_async(function()
			calls = calls + 1
			local data, err = raw:receive(4)
			return data, err
		end)
		return r, calls
	end)
	c:send('data')
	local ok, r, calls = coroutine.resume(co)
	T.ok(ok, tostring(r))
	T.eq(r, 'data', 'result')
	T.eq(calls, 1, 'data was there: one call')
	co = coroutine.create(function()
		local n = 0
		s:settimeout(0.05)
		local a, b = s:call_async(function() n = n + 1 return nil, 'wantread' end)
		return a, b, n
	end)
	local ok2, a, b = coroutine.resume(co)
	T.ok(ok2, tostring(a))
	T.eq(b, 'timeout', 'blocking call_async times out')
	c:close()
	s:close()
end)

T.run('call_async on a wrapped LuaSocket object', function()
	local socket = require'socket'
	local srv = assert(loop.tcp('127.0.0.1', 0))
	assert(srv:listen())
	local _, port = srv:getsockname()
	local ls = assert(socket.connect('127.0.0.1', port))
	local a = loop.wrap(ls)
	local peer = assert(srv:accept())
	srv:close()
	local calls = 0
	loop.newthread(function()
		await(function() return calls >= 1 end, 'the first call')
		peer:send('hello')
	end)
	local r = a:call_async(function()
		calls = calls + 1
		local data, err = ls:receive(5) -- timeout 0 (set by wrap): 'timeout' means not yet
		if data then return data end
		return nil, err == 'timeout' and 'wantread' or err
	end)
	T.eq(r, 'hello', 'result through LuaSocket')
	T.ok(calls >= 2, 'parked at least once: ' .. calls)
	a:close()
	peer:close()
end)

N.finish()
