-- A small keep-alive HTTP/1.1 server on socketloop.httpserver: the local server of the
-- HTTP tests, examples and benchmarks.
--
--   socketloop examples/http_server.lua [ip [port [cert key]]]   (port 0: any free port)
--
-- prints "listening on http://IP:PORT/" (https:// with a certificate and key, PEM files:
-- then it serves over TLS) and serves until it is killed. What it serves is
-- the same on every run, so clients can check bodies byte for byte:
--
--   GET /bytes/N    N bytes (N up to 16 MiB): "0123456789" repeated, cut to N
--   GET /stats      "connections=C requests=R\n": connections accepted, requests served
--   POST /echo      the request body (sent with Content-Length or chunked)
--   /close/...      as any other path, then the server closes the connection
--   anything else   "you asked for PATH\n"
--
-- HEAD gets the head only. Connections are kept alive (HTTP/1.1, or HTTP/1.0 with
-- Connection: keep-alive, answered with Connection: keep-alive so that an HTTP/1.0
-- client such as ab -k knows) until the client closes them or stays idle IDLE seconds;
-- an HTTP/1.0 request without it is answered with Connection: close and closed.
-- Loaded with dofile, it returns {start = function(ip, port) -> server, stats} instead,
-- where stats() returns the connection and request counts.

local loop = require'socketloop'
local httpserver = require'socketloop.httpserver'

local IDLE = 30 -- seconds a kept-alive connection may wait for its next request
local MAX_BODY = 1024 * 1024 -- request bodies past this get 413
local MAX_BYTES = 16 * 1024 * 1024 -- /bytes/N past this gets 400

local DIGITS = ('0123456789'):rep(6554) -- 65540 bytes, cut for /bytes/N

-- N bytes of DIGITS repeated, as the parts of a response body.
local function bytes(n)
	local parts = {}
	for i = 1, math.floor(n / #DIGITS) do parts[i] = DIGITS end
	parts[#parts + 1] = DIGITS:sub(1, n % #DIGITS)
	return parts
end

local function handle(req, res)
	local path = req.path
	local head = path:sub(1, 7)
	if head == '/close/' then res.close = true end
	local n = head == '/bytes/' and path:match('^/bytes/(%d+)$')
	if n and tonumber(n) > MAX_BYTES then
		res.status = 400
		return res:send('at most ' .. MAX_BYTES .. ' bytes\n')
	elseif n then
		return res:send(bytes(tonumber(n)))
	elseif path == '/stats' then
		local stats = res.server:stats()
		return res:send(('connections=%d requests=%d\n'):format(stats.connections, stats.requests))
	elseif path == '/echo' and req.method == 'POST' then
		return res:send(req.body)
	end
	return res:send('you asked for ' .. req.target .. '\n')
end

local function start(ip, port, tls)
	local server, err = httpserver.new{host = ip, port = port, handler = handle,
		idle_timeout = IDLE, max_body = MAX_BODY, tls = tls}
	if not server then return nil, err end
	return server, function() return server:stats() end
end

if arg and arg[0] and arg[0]:match('http_server%.lua$') then
	local ip, port = arg[1] or '127.0.0.1', tonumber(arg[2] or '8080')
	local tls = arg[3] and {mode = 'server', certificate = arg[3], key = arg[4]}
	local server = assert(start(ip, port, tls))
	local _, bound = server:getsockname()
	io.stdout:write(('listening on %s://%s:%d/\n'):format(tls and 'https' or 'http', ip, bound))
	io.stdout:flush()
	loop.start()
	return
end

return {start = start}
