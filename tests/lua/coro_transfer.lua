-- Symmetric coroutines in the loop: coro.transfer between loop.coro threads (across
-- waits), return threads, and coro.wrap generators that do socket I/O in loop threads.
local loop = require'socketloop'
local T = require'testlib'
local U = require'threads_util'
local N = require'testnet'
local coro = require'socketloop.coro'
local cl = loop.coro

-- Outside any coro thread: coro.main under luajit; the runner's main chunk is a thread.
if T.mode == 'luajit' then
	T.eq(coro.current, coro.main, 'coro.current in the main thread')
else
	T.eq(coro.current, coroutine.running(), 'coro.current in the runner main chunk')
end
T.eq(tostring(coro.main), 'main thread')

-- A generator without I/O, driven from the main chunk.
do
	local caller = coro.current
	local gen = coro.wrap(function(first)
		for i = first, first + 2 do coro.transfer(caller, i) end
		return 'end'
	end)
	T.eq(gen(10), 10)
	T.eq(gen(), 11)
	T.eq(gen(), 12)
	T.eq(gen(), 'end', 'the return values go to the creator')
	T.raises('transfer', gen)
end

-- An echo server for the tests below.
local function echo_server()
	local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
		N.answer_lines(skt, function(line) return line end)
	end))
	local _, port = server:getsockname()
	return server, port
end

T.run('transfer between loop.coro threads', function()
	local server, port = echo_server()
	local result
	local A = cl.newthread(function()
		local A = cl.current()
		local rounds = 0
		-- B starts with the values of the first transfer as its arguments; when it
		-- returns, its results go to A
		local B = coro.create(function(from, v)
			local s = assert(loop.connect('127.0.0.1', port))
			local count = 0
			while v do
				count = count + 1
				T.eq(coro.current, cl.current(), 'current in B')
				if v % 10 == 1 then
					-- socket I/O in the middle of the exchange: B parks, A stays suspended
					assert(s:send(v .. '\n'))
					T.eq(s:receive('*l'), tostring(v), 'echo in B')
				end
				from, v = coro.transfer(from, coro.current, v + 1)
			end
			s:close()
			return 'B done', count
		end, A)
		T.eq(coroutine.status(B), 'suspended', 'coro.create does not start the thread')
		local v = 0
		for i = 1, 60 do
			local from
			from, v = coro.transfer(B, A, v)
			T.eq(from, B, 'the sender')
			if not T.eq(v, 2 * i - 1, 'value after round ' .. i) then break end
			rounds = i
			v = v + 1
			if i % 15 == 0 then loop.sleep(0.001) end -- A parks in the middle too
		end
		result = {rounds, coro.transfer(B, A, nil)}
		T.eq(coroutine.status(B), 'dead', 'B ended')
	end)
	T.eq(type(A), 'thread')
	U.wait_until(function() return result end, 'the exchange')
	T.eq(result[1], 60, 'rounds')
	T.eq(result[2], 'B done', 'B returned to A')
	T.eq(result[3], 60, "B's count")
	T.eq(coroutine.status(A), 'dead', 'A ended')

	-- a ring of three threads passing a token around, one of them waiting on a socket
	local s = assert(loop.connect('127.0.0.1', port))
	local ring, trail, finished = {}, {}, false
	local driver = cl.newthread(function()
		local me = cl.current()
		for i = 1, 3 do
			ring[i] = coro.create(function(token)
				while token < 30 do
					trail[#trail + 1] = i
					if i == 2 then
						assert(s:send(token .. '\n'))
						token = tonumber(s:receive('*l'))
					end
					token = coro.transfer(ring[i % 3 + 1], token + 1)
				end
				-- the first to see 30 hands it back to the driver; the others never
				-- run again and are collected
				coro.transfer(me, token)
			end)
		end
		local token = coro.transfer(ring[1], 0)
		T.eq(token, 30, 'the token came back')
		finished = true
	end)
	U.wait_until(function() return finished end, 'the ring')
	T.eq(coroutine.status(driver), 'dead')
	local want = {}
	for k = 1, 30 do want[k] = (k - 1) % 3 + 1 end
	T.eq(table.concat(trail, ','), table.concat(want, ','), 'the token went round in order')
	s:close()
	server:close()
end)

T.run('coro.wrap generators doing socket I/O in loop threads', function()
	-- each connection gets `lines` lines, in bursts, with pauses between bursts so the
	-- generator has to park on its receive
	local lines = 40
	local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
		local id = skt:receive('*l')
		for i = 1, lines do
			assert(skt:send(('%s line %d\n'):format(id, i)))
			if i % 7 == 0 then loop.sleep(0.001) end
		end
		skt:close()
	end))
	local _, port = server:getsockname()
	local consumers, done = 6, 0
	for c = 1, consumers do
		-- half plain loop threads, half loop.coro threads
		local newthread = c % 2 == 0 and cl.newthread or loop.newthread
		newthread(function(id)
			local me = coro.current
			local parked_seen = 0
			local gen = coro.wrap(function()
				local s = assert(loop.connect('127.0.0.1', port))
				assert(s:send(id .. '\n'))
				while true do
					local line = s:receive('*l')
					if not line then break end
					coro.transfer(me, line)
				end
				s:close()
			end)
			local got = {}
			for line in gen do
				got[#got + 1] = line
				if loop.stats().pending > 0 then parked_seen = parked_seen + 1 end
			end
			T.eq(#got, lines, 'lines from the generator of consumer ' .. id)
			for i = 1, lines do
				if not T.eq(got[i], ('%s line %d'):format(id, i), 'line ' .. i) then break end
			end
			T.ok(parked_seen > 0, 'the loop ran while the generator worked')
			-- the generator has ended: calling it again is an error in the caller
			T.raises('dead', gen)
			done = done + 1
		end, 'consumer' .. c)
	end
	U.wait_until(function() return done == consumers end, 'the consumers', 20000)
	T.eq(done, consumers, 'every consumer finished')
	server:close()
end)

T.run('transfer to a thread that cannot continue raises in the caller', function()
	local me = cl.current()
	local err
	-- the new thread runs nested in this one, which is active, not suspended
	cl.newthread(function()
		local ok, e = pcall(coro.transfer, me, 'x')
		T.eq(ok, false, 'transfer to an active thread failed')
		err = e
	end)
	T.ok(err and err:find("'transfer'", 1, true), 'the error names transfer: ' .. tostring(err))
	local dead = coro.create(function() end, me)
	coro.transfer(dead)
	T.eq(coroutine.status(dead), 'dead')
	T.raises("'transfer'", coro.transfer, dead)
	T.raises('dead', coro.transfer, dead)
	-- transferring to itself returns the values at once
	local a, b = coro.transfer(coro.current, 1, 2)
	T.eq(a, 1)
	T.eq(b, 2)
end)

T.run('transfer to a thread waiting on a socket or a timer is refused', function()
	local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
		assert(skt:receive('*l'))
		skt:send('its own line\n')
		skt:close()
	end))
	local _, port = server:getsockname()
	local c = assert(loop.connect('127.0.0.1', port))
	local got, reader, back
	local sleeper = loop.newthread(function() loop.sleep(0.01) end)
	-- A plain loop thread starts the reader, which parks on its receive and so hands
	-- control back to the loop, not to this thread; when it ends, it returns to its
	-- starter, which waits in that transfer.
	loop.newthread(function()
		reader = coro.create(function()
			got = {c:receive('*l')}
			return 'reader done'
		end)
		back = coro.transfer(reader)
	end)
	T.eq(got, nil, 'the reader is parked on its receive')
	for _, target in ipairs{reader, sleeper, coroutine.create(function() end)} do
		local ok, err = pcall(coro.transfer, target, 'bogus')
		T.ok(not ok and err:find('not waiting in a transfer', 1, true),
			'transfer refused: ' .. tostring(err))
	end
	T.eq(got, nil, 'the refused transfer did not continue the reader')
	c:send('go\n')
	U.wait_until(function() return got end, 'the reader')
	T.same(got, {'its own line'}, 'the reader got its own line, not the bogus value')
	U.wait_until(function() return back end, 'the return to the starter')
	T.eq(back, 'reader done', 'the reader returned to its starter')
	c:close()
	server:close()
end)

T.run('a coro thread that ends while the thread it returns to waits on a timer', function()
	local reported
	local previous = loop.onerror(function(err) reported = err end)
	local woke
	-- `ender` returns to this thread, which is asleep when it ends: the end is reported
	-- as an error of `ender`, and the sleep is not cut short with ender's values.
	local ender = coro.create(function() loop.sleep(0.001) return 'bogus' end)
	loop.newthread(function() coro.transfer(ender) end)
	woke = {loop.sleep(0.02)}
	loop.onerror(previous)
	T.ok(reported and reported:find('not waiting in a transfer', 1, true), 'reported: ' .. tostring(reported))
	T.same(woke, {}, 'the sleep ended as a sleep ends')
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
