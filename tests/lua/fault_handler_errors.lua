-- Faults: a server handler that raises on every 10th request. Each error is reported
-- (loop.onerror) and closes only that client; 5 clients making 20 requests each
-- (reconnecting when closed) get exactly 90 right replies and 10 closed connections, and
-- the server goes on accepting.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local await = N.await

local errors = {}
loop.onerror(function(err)
	if tostring(err):find('boom on request %d+') then
		errors[#errors + 1] = err
	else
		T.ok(false, 'unexpected error in a loop thread: ' .. tostring(err))
	end
end)

T.run('a handler raising on every 10th request', function()
	local requests = 0
	local srv = assert(loop.newserver('127.0.0.1', 0, function(skt)
		skt:settimeout(10)
		while true do
			local line = skt:receive('*l')
			if not line then break end
			requests = requests + 1
			if requests % 10 == 0 then error('boom on request ' .. requests) end
			assert(skt:send(line:reverse() .. '\n'))
		end
		skt:close()
	end))
	local _, port = srv:getsockname()
	local function client(id)
		local right, closed, skt = 0, 0, nil
		for i = 1, 20 do
			if not skt then
				skt = assert(loop.connect('127.0.0.1', port))
				skt:settimeout(10)
			end
			local msg = ('client %d request %d'):format(id, i)
			assert(skt:send(msg .. '\n'))
			local reply, err = skt:receive('*l')
			if reply then
				if T.eq(reply, msg:reverse(), 'reply') then right = right + 1 end
			else
				T.eq(err, 'closed', 'a failed request sees closed')
				closed = closed + 1
				skt:close()
				skt = nil
			end
		end
		if skt then skt:close() end
		return right, closed
	end
	local results = {}
	for id = 1, 5 do results[id] = N.spawn(client, id) end
	await(function()
		for id = 1, 5 do if not results[id]() then return false end end
		return true
	end, 'the clients')
	local right, closed = 0, 0
	for id = 1, 5 do
		right = right + results[id]()[1]
		closed = closed + results[id]()[2]
	end
	T.eq(requests, 100, 'requests seen by the server')
	T.eq(right, 90, 'right replies')
	T.eq(closed, 10, 'connections closed by a failing handler')
	T.eq(#errors, 10, 'errors reported')
	T.eq(N.reverse_client(loop.connect, port, 9, 1, 5), 5, 'the server still serves')
	srv:close()
end)

N.finish()
