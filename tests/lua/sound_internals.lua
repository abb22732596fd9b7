-- Finding 4 of issue 12: nothing a script can require hands out raw pointers or lets it
-- break the scheduler. socketloop.core holds validated functions only; the private half
-- (parking, plain timers, the FFI entry points) and the scheduler go to the loop's own
-- modules once (src/lua/embedded.rs); require'socketloop.scheduler' is a public view;
-- tampering with an asocket's fields gives an error or a wrong answer for that socket,
-- never a crash or a huge allocation.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local core = require'socketloop.core'
local A = require'socketloop.asocket'

T.run('socketloop.core hands out no pointers and no scheduler internals', function()
	for k, v in pairs(core) do
		T.ok(type(v) ~= 'userdata', 'core.' .. tostring(k) .. ' is no pointer')
	end
	for _, name in ipairs{'parking', 'settimer', 'settimer_at', 'ffi', 'fastpath'} do
		T.eq(core[name], nil, 'core.' .. name .. ' is not public')
	end
	-- Running a preload entry again gives its module again, never the private channel.
	for name, entry in pairs(package.preload) do
		if name:find('^socketloop') then
			local ok, m = pcall(require, name)
			if ok then
				T.eq(entry(name), m, name .. ' again gives the same module')
			end
		end
	end
end)

-- Functions of the scheduler that break its invariants when a script calls them (waking
-- a live socket's waiter with 'closed', resuming or scheduling any coroutine, adopting
-- or tracking threads, forged wait lists, signal handlers) and its other internals.
local INTERNALS = {
	'wakeclosed', 'wakeone', 'wakeall', 'waitlist', 'adopt', 'track', 'start_thread',
	'sighandlers', 'sigdefaults', 'unended', 'deadline_passed', 'clear_deadline',
	'busy_threads', 'main_chunk', 'anchors', 'parking', 'settimer', 'settimer_at',
	'private', 'scheduler',
}

T.run('no scheduler internals under any socketloop module', function()
	local internal = {}
	for _, name in ipairs(INTERNALS) do internal[name] = true end
	local seen, found = {}, {}
	local function walk(x, path)
		if type(x) ~= 'table' or seen[x] then return end
		seen[x] = true
		for k, v in pairs(x) do
			if internal[k] then found[#found + 1] = path .. '.' .. tostring(k) end
			walk(k, path .. '[key]')
			walk(v, path .. '.' .. tostring(k))
		end
		walk(getmetatable(x), path .. '<mt>')
	end
	for name in pairs(package.preload) do
		if name:find('^socketloop') then pcall(require, name) end
	end
	for name, m in pairs(package.loaded) do
		if type(name) == 'string' and name:find('^socketloop') then walk(m, name) end
	end
	T.eq(table.concat(found, ', '), '', 'internals reachable')
	-- What require'socketloop.scheduler' gives: three functions that cannot break it.
	local view = require'socketloop.scheduler'
	local names = {}
	for k in pairs(view) do names[#names + 1] = k end
	table.sort(names)
	T.eq(table.concat(names, ' '), 'current report running', 'the public view of the scheduler')
	T.raises("bad argument #3 to 'report'", view.report, 'x', 'y', coroutine.create(print))
end)

T.run('a thread parked on a socket is resumed only by its socket', function()
	local c, s = N.pair()
	local got, err
	local parked = loop.newthread(function() got, err = s:receive('*l') end)
	T.raises('not suspended by loop.suspend', loop.resume, parked, 'closed')
	loop.sleep(0.01)
	T.eq(got, nil, 'still parked')
	assert(c:send('line\n'))
	N.await(function() return got end, 'the parked thread')
	T.eq(got, 'line', 'the parked thread got its line, from its socket')
	c:close() s:close()
end)

T.run('tampered asocket tokens', function()
	local c, s = N.pair()
	local c2, s2 = N.pair()
	s:settimeout(0.01)
	local TOKEN, SOCKET = A.TOKEN, A.SOCKET
	local real = s[TOKEN]
	for _, token in ipairs{2 ^ 30, 2 ^ 31, 2 ^ 40, 2 ^ 53, -1, -2 ^ 31, 0 / 0, 1.5, s2[TOKEN]} do
		s[TOKEN] = token
		local ok, data, err = pcall(s.receive, s, '*l')
		T.ok(not ok or data == nil and (err == 'closed' or err == 'timeout'),
			'token ' .. tostring(token) .. ': ' .. tostring(data) .. ' ' .. tostring(err))
		ok, data, err = pcall(s.send, s, 'x')
		T.ok(not ok or data == 1 or data == nil, 'send with token ' .. tostring(token))
	end
	s[TOKEN] = 'not a number'
	T.ok(not pcall(s.receive, s, '*l'), 'a string token raises')
	s[TOKEN] = real
	assert(c:send('still here\n'))
	T.eq(s:receive('*l'), 'still here', 'the real token works again')
	T.eq(c:receive(1), 'x', 'a send made with a tampered token went out on its own socket')
	-- Tampering with the socket field: a table is not one of our sockets.
	local raw = s[SOCKET]
	s[SOCKET] = setmetatable({}, {__index = function() return function() return nil, 'closed' end end})
	local ok, data, err = pcall(s.receive, s, '*l')
	T.ok(not ok or data == nil, 'a table behind the asocket: an error: ' .. tostring(data) .. ' ' .. tostring(err))
	s[SOCKET] = raw
	c:close() s:close() c2:close() s2:close()
end)

T.run('every asocket slot tampered with, in every method', function()
	local c, s = N.pair()
	local c2, c2peer = N.pair()
	local junk = {nil, false, true, 'text', 2 ^ 40, -1, 0 / 0, {}, io.stdout, c2, c2:getsocket(),
		coroutine.create(print), print}
	local methods = {
		function() return s:receive('*l') end, function() return s:receive(3) end,
		function() return s:receive('*a') end, function() return s:send('x') end,
		function() return s:settimeout(0.01) end, function() return s:gettimeout() end,
		function() return s:getfd() end, function() return s:getsockname() end,
		function() return s:dirty() end, function() return s:buffered() end,
		function() return tostring(s) end, function() return s:getstats() end,
	}
	s:settimeout(0.01)
	local n = 0
	for slot = 1, 4 do
		local real = rawget(s, slot)
		for j = 1, #junk + 1 do
			-- (a huge number in the timeouts slot is a long wait the script asked for)
			local value = (slot == A.TIMEOUTS and junk[j] == 2 ^ 40) and 0.01 or junk[j]
			for _, m in ipairs(methods) do
				rawset(s, slot, value) -- again each time: settimeout rewrites its slot
				pcall(m)
				n = n + 1
			end
		end
		rawset(s, slot, real)
	end
	T.eq(n, 4 * (#junk + 1) * #methods, 'every method ran with every slot tampered with')
	-- Once its slots are its own again the socket answers its line, or 'closed' if the
	-- tampering made it give up its wait key (a false `ours` registers the descriptor as
	-- a foreign one's); never a crash, and the sockets it was pointed at are untouched.
	s:settimeout(5)
	assert(c:send('after\n'))
	local line, err = s:receive('*l')
	T.ok(line == 'after' or line == nil and err == 'closed', 'the socket: ' .. tostring(line) .. ' ' .. tostring(err))
	assert(c2peer:send('for c2\n'))
	c2:settimeout(5)
	T.eq(c2:receive('*l'), 'for c2', 'the socket used as junk still works')
	local c3, s3 = N.pair()
	assert(c3:send('fresh\n'))
	T.eq(s3:receive('*l'), 'fresh', 'a new connection works')
	c3:close() s3:close() c2peer:close()
	c:close() s:close() c2:close()
end)

T.run('a thread parked on a socket survives collections', function()
	local c, s = N.pair()
	-- A thread parked on a socket survives collections while only the loop holds it.
	local got
	loop.newthread(function() got = s:receive('*l') end)
	for _ = 1, 3 do collectgarbage() end
	assert(c:send('to the parked thread\n'))
	N.await(function() return got end, 'the parked thread')
	T.eq(got, 'to the parked thread', 'the parked thread got its line')
	c:close() s:close()
end)

N.finish()
