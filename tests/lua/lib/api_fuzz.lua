-- A random-sequence fuzzer of the public API (a module, not a test script): sockets over
-- loopback, timers, threads, coro threads, closes from other threads, finalizers that
-- call back in, odd numbers. run(seed, ops) plays `ops` random operations chosen by a
-- PRNG seeded with `seed`, winds everything down and checks the loop's invariants: every
-- thread ended, nothing left waiting, no registration left once the sockets are
-- collected. Used by tests/lua/fuzz_api.lua (bounded) and scripts/fuzz_api.lua (long).
local loop = require'socketloop'
local ffi = require'ffi'

local F = {}

-- Errors a thread may legitimately raise on what the fuzzer does to it.
local EXPECTED = {
	'another thread is already waiting',
	'bad argument',
	'calling \'',
	'fuzz: planned error',
}

local function expected(err)
	err = tostring(err)
	for _, e in ipairs(EXPECTED) do
		if err:find(e, 1, true) then return true end
	end
	return false
end

-- Plays one run; returns a table of figures and a list of problems (empty when fine).
function F.run(seed, ops)
	math.randomseed(seed)
	local rnd = math.random
	local problems = {}
	local function problem(msg) problems[#problems + 1] = msg end
	local figures = {ops = 0, threads = 0, sockets = 0, closes = 0, finalizers = 0, errors = 0}

	local previous = loop.onerror(function(err, trace)
		figures.errors = figures.errors + 1
		if not expected(err) then problem('thread error: ' .. trace) end
	end)

	local srv = assert(loop.tcp('127.0.0.1', 0))
	assert(srv:listen(64))
	local _, port = srv:getsockname()
	local socks = {}       -- live asockets (both ends of pairs)
	local running = 0      -- threads started and not ended
	local function pick()
		if #socks == 0 then return nil end
		return socks[rnd(#socks)]
	end
	local function spawn(f, ...)
		running = running + 1
		figures.threads = figures.threads + 1
		loop.newthread(function(...)
			local ok, err = pcall(f, ...)
			running = running - 1
			if not ok then error(err, 0) end
		end, ...)
	end
	local function new_pair()
		if #socks >= 40 then return end
		local c = loop.tcp()
		local ok = c:connect('127.0.0.1', port)
		local s = ok and srv:accept()
		if not (ok and s) then c:close() return end
		c:settimeout(rnd() < 0.5 and 0.05 or 2)
		s:settimeout(rnd() < 0.5 and 0.05 or 2)
		socks[#socks + 1] = c
		socks[#socks + 1] = s
		figures.sockets = figures.sockets + 2
	end
	local function close_one()
		local s = pick()
		if s then
			s:close()
			figures.closes = figures.closes + 1
		end
	end
	local patterns = {'*l', '*a', 0, 1, 7, 100, 5000}
	local odd = {0 / 0, math.huge, -math.huge, -1, 2 ^ 53, 1.5, 'x'}
	-- Finalizers may only call what never yields: raw socket methods, close.
	local function litter(n)
		for _ = 1, n do
			local s = pick()
			local what = rnd(4)
			local action = function()
				figures.finalizers = figures.finalizers + 1
				if not s then return end
				if what == 1 then s:close()
				elseif what == 2 then s:getsocket():receive(0)
				elseif what == 3 then s:getsocket():send('f')
				else s:getsocket():getstats() end
			end
			if rnd() < 0.5 then
				local p = newproxy(true)
				getmetatable(p).__gc = action
			else
				ffi.gc(ffi.new('char[1]'), action)
			end
		end
	end

	local actions = {
		new_pair,
		close_one,
		function() -- a receiving thread
			local s, pat = pick(), patterns[rnd(#patterns)]
			if s then spawn(function() s:receive(pat) end) end
		end,
		function() -- a sending thread
			local s = pick()
			local data = string.rep(string.char(rnd(32, 126)), rnd(0, 3) == 0 and rnd(1, 200000) or rnd(1, 50)) .. '\n'
			if s then spawn(function() s:send(data) end) end
		end,
		function() -- a thread that closes a socket another thread may wait on
			local s = pick()
			if s then spawn(function() loop.sleep(rnd() * 0.01) s:close() end) end
		end,
		function() -- sleeps, odd ones too
			local t = ({0, -1, 0.001, 0.005, -math.huge})[rnd(5)]
			spawn(function() loop.sleep(t) end)
		end,
		function() -- threads creating threads
			local depth = rnd(1, 300)
			local function chain(n) if n > 0 then spawn(chain, n - 1) end end
			spawn(chain, depth)
		end,
		function() -- coro threads transferring to each other, one of them sleeping
			local coro = require'socketloop.coro'
			running = running + 1
			figures.threads = figures.threads + 2
			loop.coro.newthread(function()
				local A = coro.current
				local B = coro.create(function(from, v)
					for _ = 1, 3 do
						if rnd() < 0.3 then loop.sleep(0) end
						from, v = coro.transfer(from, coro.current, v + 1)
					end
				end)
				local from, v = coro.transfer(B, A, 1)
				while from == B and v do
					from, v = coro.transfer(B, A, v + 1)
				end
				running = running - 1
			end)
		end,
		function() litter(rnd(1, 10)) end,
		function() collectgarbage('step', rnd(1, 100)) end,
		function() -- odd numbers, raised as errors
			local s, v = pick(), odd[rnd(#odd)]
			if os.getenv('FUZZ_TRACE') then io.stderr:write('odd ', tostring(v), ' ', tostring(s), '\n') end
			if s then
				pcall(s.settimeout, s, v)
				s:settimeout(0.05)
				pcall(s.receive, s, v)
				pcall(s.send, s, 'x', v)
				pcall(s.setoption, s, 'receive-limit', v)
			end
			-- (an infinite sleep is no misuse: it waits for ever; a step from a loop
			-- thread may run the loop's idle waiters, the runner's main chunk too)
			pcall(loop.step, 0 / 0)
			if v ~= math.huge and v ~= 2 ^ 53 then pcall(loop.sleep, v) end
		end,
		function() -- half closes
			local s = pick()
			if s then pcall(s.shutdown, s, 'send') end
		end,
		function() -- a thread that fails on purpose
			spawn(function() error('fuzz: planned error', 0) end)
		end,
		function() -- a yield to the loop
			loop.sleep(0)
		end,
	}

	for _ = 1, ops do
		figures.ops = figures.ops + 1
		local which = rnd(#actions)
		if os.getenv("FUZZ_TRACE") then io.stderr:write(figures.ops, " ", which, "\n") end
		local ok, err = pcall(actions[which])
		if not ok and not expected(err) then problem('operation failed: ' .. tostring(err)) end
	end

	-- Wind down: close everything, let every thread end.
	for _, s in ipairs(socks) do s:close() end
	srv:close()
	socks = {}
	for _ = 1, 20000 do
		if running == 0 then break end
		loop.sleep(0.001)
	end
	if running ~= 0 then problem(running .. ' threads did not end') end
	loop.onerror(previous)
	return figures, problems
end

-- The invariants once a run's sockets are gone: nothing waits, nothing is registered.
function F.check_idle()
	for _ = 1, 3 do collectgarbage() end
	local stats = loop.stats()
	local problems = {}
	if stats.pending ~= 0 then problems[#problems + 1] = stats.pending .. ' threads still parked' end
	if stats.registrations ~= 0 then problems[#problems + 1] = stats.registrations .. ' registrations left' end
	return stats, problems
end

return F
