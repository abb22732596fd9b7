-- One client of the HTTP benchmark (benches/http_bench.sh runs them all): N GETs of
-- URL, and the requests per second it managed. Every body is checked against the
-- first one, so a client that fails or garbles is caught, not timed.
--
--   socketloop benches/http_bench.lua socketloop URL N THREADS   socketloop.http, THREADS loop threads
--   luajit     benches/http_bench.lua luasocket  URL N            LuaSocket's socket.http, one after another
--   luajit     benches/http_bench.lua copas      URL N THREADS    LuaSocket's socket.http in copas threads

local mode, url, n, threads = arg[1], arg[2], tonumber(arg[3] or '10000'), tonumber(arg[4] or '50')
if not (mode and url) then
	io.stderr:write('usage: http_bench.lua socketloop|luasocket|copas URL [N [THREADS]]\n')
	os.exit(2)
end

local failures, first = 0, nil
local function check(body, code)
	if code ~= 200 or not body then
		failures = failures + 1
		return
	end
	first = first or body
	if body ~= first then failures = failures + 1 end
end

local function report(label, seconds)
	print(('%-40s %6d GETs  %7.3f s  %9.0f req/s  %d failed'):format(label, n, seconds, n / seconds, failures))
	if failures > 0 then os.exit(1) end
end

if mode == 'socketloop' then
	local loop = require'socketloop'
	local http = require'socketloop.http'
	-- Every thread's connection stays kept alive between its requests (the default keeps
	-- 32 per server; over that, each request would open one, and for https handshake).
	http.MAXIDLE = math.max(http.MAXIDLE, threads)
	local next_request, finished = 1, 0
	local t0 = loop.now()
	for _ = 1, threads do
		loop.newthread(function()
			while next_request <= n do
				next_request = next_request + 1
				check(http.request(url))
			end
			finished = finished + 1
		end)
	end
	loop.start()
	report(('socketloop.http, %d threads'):format(threads), loop.now() - t0)
	http.closeidle()
elseif mode == 'luasocket' then
	local socket = require'socket'
	local http = require'socket.http'
	local t0 = socket.gettime()
	for _ = 1, n do check(http.request(url)) end
	report('LuaSocket socket.http, sequential', socket.gettime() - t0)
elseif mode == 'copas' then
	-- copas 1.x has no HTTP client of its own: its way is LuaSocket's socket.http over a
	-- copas-wrapped socket (copas redefines socket.protect so the request can yield).
	-- Its wrapper lacks connect and close and drops receive's prefix, which socket.http
	-- needs, so the socket handed to socket.http adds them.
	local copas = require'copas'
	local socket = require'socket'
	local http = require'socket.http'
	local ltn12 = require'ltn12'
	local function create()
		local skt = socket.tcp4()
		return {
			settimeout = function() return 1 end,
			connect = function(_, host, port) return copas.connect(skt, host, port) end,
			send = function(_, data, i, j) return copas.send(skt, data, i, j) end,
			receive = function(_, pattern, prefix) return copas.receive(skt, pattern, prefix) end,
			close = function() return skt:close() end,
			getfd = function() return skt:getfd() end,
			dirty = function() return skt:dirty() end,
		}
	end
	local next_request, finished = 1, 0
	local t0 = socket.gettime()
	for _ = 1, threads do
		copas.addthread(function()
			while next_request <= n do
				next_request = next_request + 1
				local t = {}
				local _, code = http.request{url = url, sink = ltn12.sink.table(t), create = create}
				check(table.concat(t), code)
			end
			finished = finished + 1
		end)
	end
	local deadline = socket.gettime() + 600
	while finished < threads and socket.gettime() < deadline do copas.step(1) end
	report(('copas + socket.http, %d threads'):format(threads), socket.gettime() - t0)
else
	io.stderr:write('unknown mode ', mode, '\n')
	os.exit(2)
end
