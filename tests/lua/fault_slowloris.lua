-- Faults: a slow-loris client (one byte every STEP seconds, 0.1 s here; FAULT_SLOW_STEP=1
-- for the one-byte-a-second version) against a server whose handler bounds each whole
-- receive (settimeout(10 * STEP, 't')), while other clients are served. The slow client
-- is dropped with the bytes it had sent as the partial result, before it could finish its
-- line; every other client gets all its replies, and all of them finish before the slow
-- one is dropped (an ordering, not a time measurement).
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local await = N.await

local STEP = tonumber(os.getenv('FAULT_SLOW_STEP')) or 0.1
local events = {}
local outcomes = {}
-- loop clock readings, for the figures only (no check depends on them)
local times = {}

T.run('slow loris', function()
	local srv = assert(loop.newserver('127.0.0.1', 0, function(skt)
		skt:settimeout(10 * STEP, 't')
		while true do
			local line, err, partial = skt:receive('*l')
			if not line then
				outcomes[#outcomes + 1] = {err = err, partial = partial}
				if err == 'timeout' then
					events[#events + 1] = 'slow dropped'
					times.dropped = loop.now()
				end
				break
			end
			assert(skt:send(line:reverse() .. '\n'))
		end
		skt:close()
	end))
	local _, port = srv:getsockname()
	local msg = 'a line sent one byte at a time, slowly, 40 bytes'
	local sent = 0
	local slow = N.spawn(function()
		local s = assert(loop.connect('127.0.0.1', port))
		times.slow_start = loop.now()
		for i = 1, #msg do
			if not s:send(msg:sub(i, i)) then break end
			sent = i
			loop.sleep(STEP)
		end
		local data, err = s:receive('*l')
		s:close()
		return data, err
	end)
	await(function() return sent >= 2 end, 'the slow client to start')
	local fast = {}
	for i = 1, 10 do
		fast[i] = N.spawn(N.reverse_client, loop.connect, port, i, 2, 10)
	end
	await(function()
		for i = 1, 10 do if not fast[i]() then return false end end
		return true
	end, 'the fast clients')
	events[#events + 1] = 'fast done'
	times.fast_done = loop.now()
	local sent_at_fast_done = sent
	local right = 0
	for i = 1, 10 do right = right + fast[i]()[1] end
	T.eq(right, 10 * 2 * 10, 'every fast client got every reply')
	await(slow, 'the slow client to give up', 1000, STEP)
	T.eq(events[1], 'fast done', 'the fast clients finished first')
	T.eq(events[2], 'slow dropped', 'then the slow one was dropped')
	local drop
	for _, o in ipairs(outcomes) do if o.err == 'timeout' then drop = o end end
	T.ok(drop ~= nil, 'the slow connection timed out')
	if drop then
		T.ok(#drop.partial >= 2 and #drop.partial < #msg and msg:sub(1, #drop.partial) == drop.partial,
			'its partial is what it had sent: ' .. drop.partial)
	end
	T.ok(sent < #msg, 'the slow client could not finish its line (' .. sent .. ' bytes)')
	local data, err = unpack(slow())
	T.eq(data, nil, 'the slow client got no reply')
	T.eq(err, 'closed', 'it was closed')
	N.figures('fault_slowloris', {
		step_s = STEP, receive_timeout_s = 10 * STEP, line_bytes = #msg, slow_sent_bytes = sent,
		partial_bytes = drop and #drop.partial or -1, fast_clients = 10, fast_replies = 10 * 2 * 10,
		fast_replies_right = right, fast_first = events[1] == 'fast done',
		fast_done_s = times.fast_done - times.slow_start, slow_sent_at_fast_done = sent_at_fast_done,
		slow_dropped_s = (times.dropped or times.slow_start) - times.slow_start,
	})
	srv:close()
end)

N.finish()
