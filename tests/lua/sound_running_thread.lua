-- Finding 0 of issue 12: a loop thread the poll resumed on a socket's wait key closes that
-- socket and then starts a thread that makes the collector run. The thread that is running
-- must stay alive (it was kept only by its wait key's anchor, which the close dropped): a
-- crash here is a segfault, both as a worker thread and as a server handler hit by
-- loopback clients.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'

-- Allocates and runs full collections: what a logging thread started by a handler may do.
local function churn()
	local t = {}
	for i = 1, 2000 do t[i] = {i, tostring(i)} end
	collectgarbage()
	collectgarbage()
	return #t
end

T.run('a worker woken on its socket closes it, starts a thread, lives on', function()
	local workers, finished = 50, 0
	for i = 1, workers do
		loop.newthread(function()
			local c, s = N.pair()
			loop.newthread(function()
				loop.sleep(0.001)
				c:send('line ' .. i .. '\n')
			end)
			local line = s:receive('*l') -- parks: the poll resumes this thread
			s:close()                    -- drops the wait key's anchor
			c:close()
			loop.newthread(churn)        -- the collector runs while this thread runs
			local after = {}
			for k = 1, 200 do after[k] = tostring(k) .. line end
			churn()
			T.eq(after[200], '200line ' .. i, 'the worker still has its locals')
			finished = finished + 1
		end)
	end
	N.await(function() return finished == workers end, 'the workers', 10000)
end)

T.run('a worker that connects, closes and starts a thread lives on', function()
	local srv = assert(loop.tcp('127.0.0.1', 0))
	assert(srv:listen(64))
	local _, port = srv:getsockname()
	local workers, finished = 50, 0
	for _ = 1, workers do
		loop.newthread(function()
			local s = assert(loop.connect('127.0.0.1', port))
			loop.sleep(0) -- resumed from the loop, not from its creator
			s:close()
			loop.newthread(churn)
			churn()
			finished = finished + 1
		end)
	end
	N.await(function() return finished == workers end, 'the connecting workers', 10000)
	srv:close()
end)

T.run('a server handler answers, closes its client and starts a logging thread', function()
	local logged = 0
	local srv = assert(loop.newserver('127.0.0.1', 0, function(skt)
		local line = skt:receive('*l')
		skt:send((line or '?'):upper() .. '\n')
		skt:close()
		loop.newthread(function()
			churn()
			logged = logged + 1
		end)
		churn()
	end))
	local _, port = srv:getsockname()
	local clients, right, ended = 40, 0, 0
	for i = 1, clients do
		loop.newthread(function()
			local s = assert(loop.connect('127.0.0.1', port))
			s:settimeout(10)
			assert(s:send('hello ' .. i .. '\n'))
			if s:receive('*l') == 'HELLO ' .. i then right = right + 1 end
			s:close()
			ended = ended + 1
		end)
	end
	N.await(function() return logged == clients and ended == clients end, 'the handlers', 10000)
	T.eq(right, clients, 'every client got its answer')
	srv:close()
end)

N.finish()
