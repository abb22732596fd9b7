-- A small keep-alive HTTP/1.1 server on the loop: the local server of the HTTP tests,
-- examples and benchmarks.
--
--   socketloop examples/http_server.lua [ip [port]]      (port 0: any free port)
--
-- prints "listening on http://IP:PORT/" and serves until it is killed. What it serves is
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

local IDLE = 30 -- seconds a kept-alive connection may wait for its next request
local MAX_BODY = 1024 * 1024 -- request bodies past this get 413
local MAX_BYTES = 16 * 1024 * 1024 -- /bytes/N past this gets 400

local DIGITS = ('0123456789'):rep(6554) -- 65540 bytes, cut for /bytes/N

local function bytes(n)
	if n <= #DIGITS then return DIGITS:sub(1, n) end
	local parts = {}
	for i = 1, math.floor(n / #DIGITS) do parts[i] = DIGITS end
	parts[#parts + 1] = DIGITS:sub(1, n % #DIGITS)
	return table.concat(parts)
end

local REASONS = {[200] = 'OK', [400] = 'Bad Request', [404] = 'Not Found', [413] = 'Payload Too Large'}

-- Reads the request's header fields; returns a table of lower-case names or nil.
local function read_fields(skt)
	local fields = {}
	for _ = 1, 100 do
		local line = skt:receive('*l')
		if not line then return nil end
		if line == '' then return fields end
		local name, value = line:match('^([^:%s]+):%s*(.-)%s*$')
		if not name then return nil end
		fields[name:lower()] = value
	end
	return nil
end

-- Reads a request body framed by Content-Length or chunked; nil, status on failure.
local function read_body(skt, fields)
	if (fields['transfer-encoding'] or ''):lower():find('chunked', 1, true) then
		local parts, size = {}, 0
		while true do
			local line = skt:receive('*l')
			local n = line and tonumber(line:match('^%x+'), 16)
			if not n then return nil, 400 end
			if n == 0 then
				repeat line = skt:receive('*l') until line == '' or not line
				return table.concat(parts)
			end
			size = size + n
			if size > MAX_BODY then return nil, 413 end
			parts[#parts + 1] = skt:receive(n)
			if not parts[#parts] or skt:receive('*l') ~= '' then return nil, 400 end
		end
	end
	local length = tonumber(fields['content-length'] or '0')
	if not length or length < 0 then return nil, 400 end
	if length > MAX_BODY then return nil, 413 end
	if length == 0 then return '' end
	return skt:receive(length)
end

local function start(ip, port)
	local stats = {connections = 0, requests = 0}

	-- `connection`: the Connection field to send: 'close', 'keep-alive' (an HTTP/1.0
	-- client only keeps a connection it is told is kept) or nil.
	local function respond(skt, method, code, body, connection)
		local head = ('HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n')
			:format(code, REASONS[code], #body, connection and 'Connection: ' .. connection .. '\r\n' or '')
		return skt:send(method == 'HEAD' and head or head .. body)
	end

	local function handle(skt)
		stats.connections = stats.connections + 1
		skt:settimeout(IDLE)
		while true do
			local line = skt:receive('*l')
			if not line then break end
			local method, path, minor = line:match('^(%u+) (%S+) HTTP/1%.(%d)$')
			local fields = method and read_fields(skt)
			if not fields then
				respond(skt, 'GET', 400, 'bad request\n', 'close')
				break
			end
			local body, bad = read_body(skt, fields)
			if not body then
				respond(skt, method, bad or 400, 'bad request body\n', 'close')
				break
			end
			stats.requests = stats.requests + 1
			local connection = (fields.connection or ''):lower()
			local close = connection:find('close', 1, true) ~= nil
				or (minor == '0' and not connection:find('keep-alive', 1, true))
				or path:sub(1, 7) == '/close/'
			local code, content = 200, nil
			local n = path:match('^/bytes/(%d+)$')
			if n and tonumber(n) > MAX_BYTES then
				code, content = 400, 'at most ' .. MAX_BYTES .. ' bytes\n'
			elseif n then
				content = bytes(tonumber(n))
			elseif path == '/stats' then
				content = ('connections=%d requests=%d\n'):format(stats.connections, stats.requests)
			elseif path == '/echo' and method == 'POST' then
				content = body
			else
				content = 'you asked for ' .. path .. '\n'
			end
			local answer = close and 'close' or (minor == '0' and 'keep-alive' or nil)
			if not respond(skt, method, code, content, answer) or close then break end
		end
		skt:close()
	end

	local server, err = loop.newserver(ip, port, handle)
	if not server then return nil, err end
	return server, function() return stats end
end

if arg and arg[0] and arg[0]:match('http_server%.lua$') then
	local ip, port = arg[1] or '127.0.0.1', tonumber(arg[2] or '8080')
	local server = assert(start(ip, port))
	local _, bound = server:getsockname()
	io.stdout:write(('listening on http://%s:%d/\n'):format(ip, bound))
	io.stdout:flush()
	loop.start()
	return
end

return {start = start}
