-- Finding 2 of issue 12: every number from Lua that becomes a duration, size, count or
-- index is checked. NaN, infinities, negative and huge values give a Lua error naming the
-- function and the argument (or, where LuaSocket gives them a meaning, that meaning),
-- never a panic or an abort, inside pcall and out, in a loop thread and outside one.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local core = require'socketloop.core'

local nan, inf = 0 / 0, math.huge
local odd = {nan, inf, -inf, -1, 2 ^ 63, 1e300, 1.5}

-- f(...) raises an error containing `want`.
local function bad(want, f, ...)
	T.raises(want, f, ...)
end

local function loop_functions()
	bad("bad argument #1 to 'step' (number expected, got NaN)", loop.step, nan)
	bad("bad argument #1 to 'start' (number expected, got NaN)", loop.start, nan)
	bad("bad argument #1 to 'sleep' (number expected, got NaN)", loop.sleep, nan)
	bad("bad argument #1 to 'sleep_until' (number expected, got NaN)", loop.sleep_until, nan)
	-- Negative and infinitely negative times are no time at all.
	loop.sleep(-1)
	loop.sleep(-inf)
	loop.sleep_until(-inf)
	for _, n in ipairs{nan, inf, -inf, -1, 1.5, 2 ^ 40} do
		local ok, err = pcall(loop.wrap, n)
		T.ok(not ok and tostring(err):find("bad argument #1 to 'wrap'", 1, true),
			'wrap(' .. tostring(n) .. '): ' .. tostring(err))
	end
	T.eq(select('#', core.now()), 1, 'now')
	local ok, err = pcall(core.waitfd, nil, false, nan)
	T.ok(not ok and tostring(err):find("bad argument #3 to 'waitfd'", 1, true), 'waitfd NaN: ' .. tostring(err))
end

local function socket_methods()
	local c, s = N.pair()
	assert(c:send('0123456789\n'))
	for _, n in ipairs(odd) do
		local name = tostring(n)
		if n ~= 2 ^ 63 and n ~= 1e300 and n ~= inf then
			bad("bad argument #1 to 'settimeout'", s.settimeout, s, n == n and 'x' or n)
		end
		if n ~= 1.5 then
			bad("bad argument #1 to 'receive' (invalid receive pattern)", s.receive, s, n)
		end
		bad("bad argument #2 to 'bind'", function() local t = loop.tcp() local ok, e = pcall(t.bind, t, '127.0.0.1', n) t:close() error(e) end)
		bad("bad argument #2 to 'connect'", function() local t = loop.tcp() local ok, e = pcall(t.connect, t, '127.0.0.1', n) t:close() error(e) end)
		if n ~= n or n == inf or n == -inf then
			bad("bad argument #2 to 'send' (number expected)", s.send, s, 'x', n)
			bad("bad argument #2 to 'send' (number expected)", s.send, s, 'x', 1, n)
			bad("bad argument #1 to 'listen' (number expected)", s.listen, s, n)
			bad("bad argument #1 to 'setfd'", s.setfd, s, n)
		end
		bad("bad argument #2 to 'setoption'", s.setoption, s, 'recv-buffer-size', n == 1.5 and 1.5 or (n == -1 and -1 or n) )
		if n ~= n or n < 0 or n == inf or n == 1.5 or n > 2 ^ 53 then
			bad("bad argument #2 to 'setoption'", s.setoption, s, 'receive-limit', n)
			bad("bad argument #2 to 'setoption'", s.setoption, s, 'linger', {on = true, timeout = n})
			bad("bad argument #2 to 'setoption'", s.setoption, s, 'tcp-keepidle', n)
		end
		-- Counts LuaSocket accepts any number for saturate.
		T.eq(s:setstats(n, n, n), 1, 'setstats(' .. name .. ')')
	end
	-- settimeout takes infinity (no limit) and negative values (none), as LuaSocket.
	T.eq(s:settimeout(inf), 1, 'settimeout(inf)')
	T.eq(s:receive('*l'), '0123456789', 'a receive with an infinite timeout')
	T.eq(s:settimeout(-inf), 1, 'settimeout(-inf)')
	T.eq(s:settimeout(5), 1, 'settimeout(5)')
	-- send indices: huge ones are clamped as LuaSocket's.
	T.eq(c:send('abc', -2 ^ 60, 2 ^ 60), 3, 'send with huge indices')
	T.eq(s:receive(3), 'abc', 'those bytes')
	T.eq(c:send('abc', 2 ^ 60), 2 ^ 60 - 1, 'send starting past the end')
	c:close()
	s:close()
end

T.run('loop functions in a loop thread', loop_functions)
T.run('socket methods in a loop thread', socket_methods)
-- And outside any loop thread: blocking calls, the main chunk under stock luajit.
N.in_plain_coroutine(loop_functions)
N.in_plain_coroutine(function()
	local ok, err = pcall(loop.sleep, nan)
	T.ok(not ok and err:find('NaN', 1, true), 'sleep(NaN) outside the loop: ' .. tostring(err))
end)

N.finish()
