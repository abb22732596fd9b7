-- Finding 5 of issue 12: a peer that sends calls and does not read the answers. The
-- server stops reading that connection's calls while more than `maxqueued` bytes wait
-- for the peer (so memory stays bounded), and closes the connection when the queue is
-- not taken within message_timeout, whether the peer reads nothing or a little now and
-- then. Its other clients are served all along.
local loop = require'socketloop'
local rpc = require'socketloop.rpc'
local T = require'testlib'
local N = require'testnet'

local call = require'rpcwire'.call

local MAXQUEUED, ANSWER = 64 * 1024, 10000

-- A server whose `big` answers ANSWER bytes; records its sessions' largest queue.
local function server()
	local state = {sessions = {}, errors = {}, most = 0}
	local srv = assert(rpc.newserveronly('127.0.0.1', 0, {
		expose = {big = function() return string.rep('x', ANSWER) end, ping = function() return 'pong' end},
		maxqueued = MAXQUEUED,
		message_timeout = 1,
		onconnect = function(session) state.sessions[#state.sessions + 1] = session end,
		onerror = function(err) state.errors[#state.errors + 1] = err end,
	}))
	loop.newthread(function()
		while not state.stop do
			for _, s in ipairs(state.sessions) do
				if s.queued > state.most then state.most = s.queued end
			end
			loop.sleep(0.001)
		end
	end)
	local _, port = srv:getsockname()
	return srv, port, state
end

-- A raw peer that sends `n` calls to `big` without reading (its receive buffer small);
-- `reader` (optional) runs alongside with the socket. Returns the socket and a function
-- telling whether the sender is done.
local function flood(port, n, reader)
	local skt = assert(loop.tcp())
	skt:setoption('recv-buffer-size', 4096)
	assert(skt:connect('127.0.0.1', port))
	skt:settimeout(3)
	local done = N.spawn(function()
		for i = 1, n do
			if not skt:send(call(i % 256, 'big')) then return i end
		end
		return n
	end)
	if reader then loop.newthread(reader, skt) end
	return skt, done
end

T.run('a peer that never reads: bounded queue, then closed', function()
	local srv, port, state = server()
	local skt, done = flood(port, 3000)
	N.await(function() return #state.errors > 0 end, 'the server closing the connection', 10000)
	T.ok(state.errors[1] and (state.errors[1]:find('not taken within', 1, true)
		or state.errors[1]:find('sending failed (timeout)', 1, true)), 'closed for not reading: ' .. tostring(state.errors[1]))
	T.ok(state.most <= MAXQUEUED + ANSWER + 64, 'the queue stayed bounded: ' .. state.most .. ' bytes')
	N.await(done, 'the flooding sender')
	-- the server still serves others
	local good = assert(rpc.newclient('127.0.0.1', port, {expose = {}}))
	T.eq(good:call('ping'), 'pong', 'another client is served')
	good:close()
	skt:close()
	state.stop = true
	srv:close()
end)

T.run('a peer that reads a little now and then is closed too', function()
	local srv, port, state = server()
	local total = 0
	local skt, done = flood(port, 3000, function(s)
		while true do
			local data, err, part = s:receive(512)
			total = total + #(data or part or '')
			if not data then break end
			loop.sleep(0.2)
		end
	end)
	N.await(function() return #state.errors > 0 end, 'the server closing the slow connection', 20000)
	-- (the kernel may not tell the server about reads that small: its send then makes no
	-- progress at all, and times out first)
	T.ok(state.errors[1] and (state.errors[1]:find('not taken within 1 seconds', 1, true)
		or state.errors[1]:find('sending failed (timeout)', 1, true)),
		'closed for not draining: ' .. tostring(state.errors[1]))
	T.ok(total > 0, 'the peer did read some')
	T.ok(state.most <= MAXQUEUED + ANSWER + 64, 'the queue stayed bounded: ' .. state.most .. ' bytes')
	N.await(done, 'the flooding sender')
	skt:close()
	state.stop = true
	srv:close()
end)

T.run('a peer that reads everything is served in full', function()
	local srv, port, state = server()
	local got = 0
	local skt, done = flood(port, 300, function(s)
		for _ = 1, 300 do
			local h = s:receive(6)
			if not h then break end
			local size = h:byte(3) * 2^24 + h:byte(4) * 2^16 + h:byte(5) * 2^8 + h:byte(6)
			if not s:receive(size) then break end
			got = got + 1
		end
	end)
	N.await(function() return got == 300 end, 'every answer', 20000)
	T.eq(#state.errors, 0, 'no error')
	N.await(done, 'the sender')
	skt:close()
	state.stop = true
	srv:close()
end)

N.finish()
