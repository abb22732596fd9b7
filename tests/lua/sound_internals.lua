-- Finding 4 of issue 12: nothing a script can require hands out raw pointers or lets it
-- break the scheduler. socketloop.core holds validated functions only; the private half
-- (parking, plain timers, the FFI entry points) went to the loop's own modules once;
-- tampering with an asocket's fields gives an error or a wrong answer for that socket,
-- never a crash or a huge allocation.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local core = require'socketloop.core'
local S = require'socketloop.scheduler'

T.run('socketloop.core hands out no pointers and no scheduler internals', function()
	for k, v in pairs(core) do
		T.ok(type(v) ~= 'userdata', 'core.' .. tostring(k) .. ' is no pointer')
	end
	for _, name in ipairs{'parking', 'settimer', 'settimer_at', 'ffi', 'fastpath'} do
		T.eq(core[name], nil, 'core.' .. name .. ' is not public')
	end
	T.eq(S.anchors, nil, 'the anchors are not reachable')
	-- Loading the loop's own modules again gives nothing.
	for _, name in ipairs{'socketloop.scheduler', 'socketloop.asocket'} do
		local ok, err = pcall(package.preload[name], name)
		T.ok(not ok and tostring(err):find('loaded by socketloop itself', 1, true),
			name .. ' again: ' .. tostring(err))
	end
end)

T.run('tampered asocket tokens', function()
	local c, s = N.pair()
	local c2, s2 = N.pair()
	s:settimeout(0.01)
	local real = s.token
	for _, token in ipairs{2 ^ 30, 2 ^ 31, 2 ^ 40, 2 ^ 53, -1, -2 ^ 31, 0 / 0, 1.5, s2.token} do
		s.token = token
		local ok, data, err = pcall(s.receive, s, '*l')
		T.ok(not ok or data == nil and (err == 'closed' or err == 'timeout'),
			'token ' .. tostring(token) .. ': ' .. tostring(data) .. ' ' .. tostring(err))
		ok, data, err = pcall(s.send, s, 'x')
		T.ok(not ok or data == 1 or data == nil, 'send with token ' .. tostring(token))
	end
	s.token = 'not a number'
	T.ok(not pcall(s.receive, s, '*l'), 'a string token raises')
	s.token = real
	assert(c:send('still here\n'))
	T.eq(s:receive('*l'), 'still here', 'the real token works again')
	T.eq(c:receive(1), 'x', 'a send made with a tampered token went out on its own socket')
	-- Tampering with the socket field: a table is not one of our sockets.
	local raw = s.socket
	s.socket = setmetatable({}, {__index = function() return function() return nil, 'closed' end end})
	local ok, data, err = pcall(s.receive, s, '*l')
	T.ok(not ok or data == nil, 'a table behind the asocket: an error: ' .. tostring(data) .. ' ' .. tostring(err))
	s.socket = raw
	c:close() s:close() c2:close() s2:close()
end)

T.run('the scheduler half a script can reach', function()
	-- wait() on keys that are no live registration answers 'closed' at once.
	for _, key in ipairs{2 ^ 31, 2 ^ 30, 2 ^ 53, -1, 0 / 0, 12345678} do
		T.eq(S.wait(key), 'closed', 'wait(' .. tostring(key) .. ')')
	end
	-- Outside a loop thread it does not park.
	local c, s = N.pair()
	local co = coroutine.create(function() return S.wait(s.token * 2) end)
	local ok, how = coroutine.resume(co)
	T.ok(ok and how == nil, 'wait outside a loop thread does not park: ' .. tostring(how))
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
