-- Keep-alive: connections are reused across requests and threads, counted on the
-- server side (examples/http_server.lua in this process, and scripted servers); the
-- idle limit, the idle timeout, servers that close, and requests that opt out.
local loop = require'socketloop'
local http = require'socketloop.http'
local T = require'testlib'
local H = require'http_support'
local example = dofile('examples/http_server.lua')

-- Runs body(base, stats) against a fresh example server; closes it (and the idle
-- connections) afterwards so the loop goes idle.
local function with_example(name, body)
	T.run(name, function()
		local server, stats = assert(example.start('127.0.0.1', 0))
		local _, port = server:getsockname()
		body('http://127.0.0.1:' .. port, stats, port)
		http.closeidle()
		server:close()
	end)
end

with_example('sequential requests share one connection', function(base, stats, port)
	for i = 1, 10 do
		local body, code = http.request(base .. '/seq/' .. i)
		T.eq(code, 200, 'code')
		T.eq(body, 'you asked for /seq/' .. i .. '\n', 'body')
	end
	T.eq(stats().connections, 1, 'one connection for 10 requests')
	T.eq(stats().requests, 10, 'requests served')
	T.eq(select(2, http.idlecount('127.0.0.1', port)), 1, 'one idle connection to the server')
end)

with_example('threads share the pool', function(base, stats)
	T.eq(http.request(base .. '/warm'), 'you asked for /warm\n', 'warm-up')
	local threads, finished = 5, 0
	for t = 1, threads do
		loop.newthread(function()
			for i = 1, 10 do
				local path = ('/t%d/%d'):format(t, i)
				T.eq(http.request(base .. path), 'you asked for ' .. path .. '\n', 'body ' .. path)
			end
			finished = finished + 1
		end)
	end
	for _ = 1, 1000 do
		if finished == threads then break end
		loop.sleep(0.01)
	end
	T.eq(finished, threads, 'threads finished')
	-- the warm-up connection went to one thread, the other four connected
	T.eq(stats().connections, threads, 'one connection per concurrent thread')
	T.eq(stats().requests, 1 + threads * 10, 'requests served')
	-- later requests, from any thread, take the idle ones
	for i = 1, 5 do http.request(base .. '/after/' .. i) end
	T.eq(stats().connections, threads, 'no new connection afterwards')
end)

with_example('opting out and closing servers', function(base, stats)
	for i = 1, 3 do
		T.eq(http.request{url = base .. '/no/' .. i, keepalive = false}, 1, 'keepalive=false')
	end
	T.eq(stats().connections, 3, 'keepalive=false: a connection per request')
	T.eq(http.idlecount(), 0, 'keepalive=false: nothing kept')
	-- the server closes after /close/...: the next request connects again
	T.eq(http.request(base .. '/close/1'), 'you asked for /close/1\n', 'close path')
	T.eq(http.request(base .. '/x'), 'you asked for /x\n', 'after the close')
	T.eq(stats().connections, 5, 'a server close means a new connection')
	-- a Connection: close request (on the idle connection) is honoured by both sides
	T.eq(http.idlecount(), 1, 'the connection of /x is idle')
	http.request{url = base .. '/y', headers = {connection = 'close'}}
	T.eq(stats().connections, 5, 'Connection: close: sent on the idle connection')
	T.eq(http.idlecount(), 0, 'Connection: close: not kept')
end)

with_example('sockets from create are not pooled', function(base, stats)
	local created = 0
	local function create()
		created = created + 1
		return loop.tcp()
	end
	for i = 1, 3 do
		local out = {}
		local ok, code = http.request{url = base .. '/made/' .. i, create = create,
			sink = function(chunk) out[#out + 1] = chunk return 1 end}
		T.eq(ok, 1, 'create: request')
		T.eq(code, 200, 'create: code')
		T.eq(table.concat(out), 'you asked for /made/' .. i .. '\n', 'create: body')
	end
	T.eq(created, 3, 'create called for each request')
	T.eq(stats().connections, 3, 'create: a connection per request')
	T.eq(http.idlecount(), 0, 'create: nothing kept')
	local ok, err = http.request{url = base .. '/x', create = function() return nil, 'no socket today' end}
	T.eq(ok, nil, 'create failing')
	T.eq(err, 'no socket today', 'create error returned')
end)

with_example('idle limit and idle timeout', function(base, stats)
	local maxidle, idletimeout = http.MAXIDLE, http.IDLETIMEOUT
	http.MAXIDLE = 2
	local finished = 0
	for t = 1, 5 do
		loop.newthread(function()
			http.request(base .. '/limit/' .. t)
			finished = finished + 1
		end)
	end
	for _ = 1, 1000 do
		if finished == 5 then break end
		loop.sleep(0.01)
	end
	T.eq(stats().connections, 5, 'five at once')
	T.eq(http.idlecount(), 2, 'only MAXIDLE kept')
	http.closeidle()
	http.MAXIDLE = maxidle
	http.IDLETIMEOUT = 0.05
	http.request(base .. '/a')
	loop.sleep(0.1)
	http.request(base .. '/b')
	T.eq(stats().connections, 7, 'idle past IDLETIMEOUT: a new connection')
	http.IDLETIMEOUT = idletimeout
	http.request(base .. '/c')
	T.eq(stats().connections, 7, 'within IDLETIMEOUT: reused')
end)

-- Scripted servers that end kept-alive connections in the ways real ones do.
local function scripted(name, handler, body)
	T.run(name, function()
		local server, counts, base = H.scripted(handler)
		body(base, counts)
		http.closeidle()
		server:close()
	end)
end

-- Answers the first request of each connection, then takes the next request and
-- closes without answering, as a server does that timed the connection out just as
-- the request came.
scripted('kept-alive connection closed under a request', function(skt)
	local served = 0
	while true do
		local line = H.read_request(skt)
		if not line then break end
		if served == 1 then break end
		served = served + 1
		skt:send(H.response(200, 'served ' .. line:match('^%u+ (%S+)')))
	end
	skt:close()
end, function(base, counts)
	T.eq(http.request(base .. '/1'), 'served /1', 'first')
	T.eq(http.request(base .. '/2'), 'served /2', 'GET retried on a new connection')
	T.eq(counts.connections, 2, 'the retry connected again')
	local ok, err = http.request(base .. '/3', 'x=1')
	T.eq(ok, nil, 'a POST is not retried')
	T.eq(err, 'closed', 'POST on a connection closed under it')
end)

-- Sends each response with junk after it and closes: the connection, pooled, is seen
-- to be unusable when it is taken back.
scripted('stale idle connections are dropped', function(skt)
	local line = H.read_request(skt)
	if line then skt:send(H.response(200, 'ok') .. 'junk') end
	loop.sleep(0.05)
	skt:close()
end, function(base, counts)
	for i = 1, 3 do
		T.eq(http.request(base .. '/' .. i), 'ok', 'request ' .. i)
	end
	T.eq(counts.connections, 3, 'stale connections were not used')
end)

scripted('HTTP/1.0 responses are not kept', function(skt)
	local line = H.read_request(skt)
	if line then skt:send('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok') end
	skt:receive(1)
	skt:close()
end, function(base, counts)
	T.eq(http.request(base .. '/a'), 'ok', 'first')
	T.eq(http.request(base .. '/b'), 'ok', 'second')
	T.eq(counts.connections, 2, 'HTTP/1.0 without keep-alive: a connection each')
	T.eq(http.idlecount(), 0, 'nothing kept')
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
