-- Many threads calling over one rpc session: 300 concurrent calls from 300 threads (at
-- most 256 in flight, the rest wait for a sequence number), answers matched to calls
-- rather than to arrival order, and calls in flight when either end closes.
local loop = require'socketloop'
local rpc = require'socketloop.rpc'
local T = require'testlib'
local N = require'testnet'

-- Waits (bounded) until cond() holds: up to 1000 steps of 5 ms.
local function wait_until(cond, what) return N.await(cond, what, 1000, 0.005) end

local started, inflight, most = 0, 0, 0
local held = {}
local slow_waiting
local api = {}

-- The first 256 calls wait until all 256 are in flight at once; later ones return at
-- once. If the client let more than 256 calls fly, `most` would exceed 256.
function api.hold(i)
	started = started + 1
	inflight = inflight + 1
	if inflight > most then most = inflight end
	if started < 256 then
		held[#held + 1] = loop.current()
		loop.suspend()
	elseif started == 256 then
		local list = held
		held = {}
		for _, co in ipairs(list) do loop.resume(co) end
	end
	inflight = inflight - 1
	return i * 2, i
end

function api.slow()
	slow_waiting = loop.current()
	return loop.suspend()
end

function api.release(v)
	local co = slow_waiting
	slow_waiting = nil
	loop.resume(co, v)
	return true
end

function api.fast(x) return x + 1 end

function api.park()
	held[#held + 1] = loop.current()
	loop.suspend()
end

function api.close_me()
	rpc.caller():close()
	return 'never sent'
end

T.run('rpc 300 concurrent calls', function()
	local server = assert(rpc.newserveronly('127.0.0.1', 0, {expose = api}))
	local _, port = server:getsockname()
	local s = assert(rpc.newclient('127.0.0.1', port))
	local results, done = {}, 0
	for i = 1, 300 do
		loop.newthread(function()
			local doubled, same = s:call('hold', i)
			results[i] = doubled == i * 2 and same == i
			done = done + 1
		end)
	end
	wait_until(function() return done == 300 end, '300 answers')
	local right = 0
	for i = 1, 300 do if results[i] then right = right + 1 end end
	T.eq(right, 300, 'every caller got its own answer')
	T.eq(most, 256, 'at most 256 calls in flight, and 256 reached')
	T.eq(started, 300, 'the server ran every call')

	-- a slow call does not hold up a fast one; answers come back out of order
	local slow_result
	loop.newthread(function() slow_result = s:call('slow') end)
	wait_until(function() return slow_waiting ~= nil end, 'the slow call to start')
	for i = 1, 5 do T.eq(s:call('fast', i), i + 1, 'fast call while slow one waits') end
	T.eq(slow_result, nil, 'slow call still waiting')
	T.eq(s:call('release', 'late'), true)
	wait_until(function() return slow_result ~= nil end, 'the slow answer')
	T.eq(slow_result, 'late', 'slow call answered')

	-- the client closing while calls are in flight: they return nil, 'closed'
	local r1, r2, r3
	loop.newthread(function() r1, r2, r3 = s:call('slow') end)
	wait_until(function() return slow_waiting ~= nil end, 'slow call to start')
	T.eq(r2, nil, 'in flight')
	s:close()
	wait_until(function() return r2 ~= nil end, 'the closed call to return')
	T.eq(r1, nil, 'closed call result')
	T.eq(r2, 'closed', 'closed call error')
	T.eq(r3, nil, 'nothing more')
	slow_waiting = nil

	-- the peer closing while a call is in flight
	local s2 = assert(rpc.newclient('127.0.0.1', port))
	local a, b = s2:call('close_me')
	T.eq(a, nil, 'peer closed')
	T.eq(b, 'closed', 'peer closed: closed')
	T.eq(select(2, s2:call('fast', 1)), 'closed', 'session closed after the peer closed')

	-- many threads waiting for a sequence number when the session closes
	local s3 = assert(rpc.newclient('127.0.0.1', port))
	held = {}
	local errs = {}
	for i = 1, 260 do
		loop.newthread(function()
			local _, e = s3:call('park', i)
			errs[#errs + 1] = e
		end)
	end
	wait_until(function() return #held == 256 end, '256 calls parked on the server')
	loop.sleep(0.05)
	T.eq(#held, 256, 'no more than 256 calls reached the server')
	s3:close()
	wait_until(function() return #errs == 260 end, 'every caller to return')
	local closed = 0
	for _, e in ipairs(errs) do if e == 'closed' then closed = closed + 1 end end
	T.eq(closed, 260, 'callers in flight and in line all get closed')
	for _, co in ipairs(held) do loop.resume(co) end
	held = {}
	server:close()
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
