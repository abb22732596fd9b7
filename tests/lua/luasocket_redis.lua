-- An unchanged LuaSocket client library on the loop: Debian's lua-redis (redis-lua)
-- after loop.luasocket(), against a redis-server this test starts on a free port of
-- 127.0.0.1: 100 threads doing 100 SET/GET each at once, and a BLPOP in one thread
-- woken by an RPUSH from another.
local loop = require'socketloop'
local T = require'testlib'
local H = require'http_support'

loop.luasocket()
local redis = require'redis'

-- A port nothing listens on now: bound, read and released.
local function free_port()
	local s = assert(loop.tcp('127.0.0.1', 0))
	local _, port = s:getsockname()
	s:close()
	return port
end

local port = free_port()
local dir = H.tmpdir()
local server = H.spawn(('redis-server --port %d --bind 127.0.0.1 --save "" --appendonly no --dir %s')
	:format(port, H.quote(dir)))

-- Waits (bounded) until the server answers.
local function connect()
	for _ = 1, 500 do
		local ok, client = pcall(redis.connect, '127.0.0.1', port)
		if ok then return client end
		loop.sleep(0.01)
	end
	error('redis-server did not start on port ' .. port)
end

T.run('redis: 100 threads x 100 SET/GET', function()
	local probe = connect()
	T.eq(probe:ping(), true, 'PING')
	probe:quit()
	local THREADS, OPS = 100, 100
	local finished, waiting, most = 0, 0, 0
	for t = 1, THREADS do
		loop.newthread(function()
			local client = redis.connect('127.0.0.1', port)
			local ok = 0
			for i = 1, OPS do
				local key, value = ('k:%d:%d'):format(t, i), ('v%d.%d'):format(t, i):rep(i % 7 + 1)
				waiting = waiting + 1
				if waiting > most then most = waiting end
				client:set(key, value)
				local back = client:get(key)
				waiting = waiting - 1
				if back == value then ok = ok + 1 end
			end
			T.eq(ok, OPS, 'thread ' .. t .. ': values read back')
			client:quit()
			finished = finished + 1
		end)
	end
	for _ = 1, 6000 do
		if finished == THREADS then break end
		loop.sleep(0.01)
	end
	T.eq(finished, THREADS, 'threads finished')
	T.ok(most > 1, 'the threads overlapped: at most ' .. most .. ' requests in flight')
	local check = connect()
	T.eq(check:get('k:57:33'), ('v57.33'):rep(33 % 7 + 1), 'a value seen from another connection')
	check:quit()
end)

T.run('redis: BLPOP woken by RPUSH from another thread', function()
	local popper, pusher = connect(), connect()
	popper:del('queue')
	local got, popped = nil, false
	local thread = loop.newthread(function()
		got = popper:blpop('queue', 30)
		popped = true
	end)
	T.eq(popped, false, 'BLPOP waits (parked, not blocking the loop)')
	loop.sleep(0.05)
	T.eq(popped, false, 'still waiting with nothing pushed')
	pusher:rpush('queue', 'hello')
	-- A generous bound: well under BLPOP's own 30 s timeout, so the pop was the push's.
	local started = loop.now()
	while not popped and loop.now() - started < 10 do loop.sleep(0.005) end
	T.eq(popped, true, 'BLPOP returned')
	T.ok(type(got) == 'table' and got[1] == 'queue' and got[2] == 'hello',
		'BLPOP got the pushed value: ' .. tostring(got and got[2]))
	T.ok(thread ~= nil, 'thread')
	popper:quit()
	pusher:quit()
end)

-- examples/redis_many.lua against the same server (under the runner with --luasocket).
do
	local flag = T.mode == 'runner' and ' --luasocket' or ''
	local out, status = H.run(H.interpreter() .. flag .. ' examples/redis_many.lua ' .. port .. ' 20 30 2>&1')
	T.eq(status, 0, 'redis_many.lua exit status: ' .. out)
	T.ok(out:find('^600 of 600 values read back right, 0 threads failed'), 'redis_many.lua: ' .. out)
end

H.stop(server)
H.rmdir(dir)
T.finish()
