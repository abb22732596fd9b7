-- socketloop.httpserver: an HTTP/1.1 server on the loop, one loop thread per connection.
-- docs/httpserver.md documents it.
--
--   local httpserver = require'socketloop.httpserver'
--   local server = assert(httpserver.new{host = '127.0.0.1', port = 8080,
--     handler = function(req, res) res:send('you asked for ' .. req.path .. '\n') end})
--
-- Each connection's thread reads a request head line by line (every line bounded by the
-- socket's receive limit, the whole head by a byte and a field count), reads its body
-- (Content-Length or chunked, bounded), calls the handler and writes the response with
-- one send. Requests on a connection are served one after the other, so pipelined
-- requests are answered in order. The request and response objects, and the table the
-- response is assembled in, are made once per connection and reused for each request.

local loop = require'socketloop'
local S = require'socketloop.scheduler'
local ffi = require'ffi'

local find, sub, byte, lower, format = string.find, string.sub, string.byte, string.lower, string.format
local concat = table.concat
local clear = require'table.clear'
local type, tostring, tonumber, select = type, tostring, tonumber, select
local xpcall, traceback = xpcall, debug.traceback
local os_date = os.date

local M = {}

-- Reason phrases of the status codes this server and common handlers send.
local REASONS = {
	[100] = 'Continue', [101] = 'Switching Protocols',
	[200] = 'OK', [201] = 'Created', [202] = 'Accepted', [204] = 'No Content',
	[206] = 'Partial Content',
	[301] = 'Moved Permanently', [302] = 'Found', [303] = 'See Other', [304] = 'Not Modified',
	[307] = 'Temporary Redirect', [308] = 'Permanent Redirect',
	[400] = 'Bad Request', [401] = 'Unauthorized', [403] = 'Forbidden', [404] = 'Not Found',
	[405] = 'Method Not Allowed', [408] = 'Request Timeout', [409] = 'Conflict',
	[410] = 'Gone', [411] = 'Length Required', [413] = 'Content Too Large',
	[414] = 'URI Too Long', [415] = 'Unsupported Media Type', [417] = 'Expectation Failed',
	[422] = 'Unprocessable Content', [429] = 'Too Many Requests',
	[431] = 'Request Header Fields Too Large',
	[500] = 'Internal Server Error', [501] = 'Not Implemented', [502] = 'Bad Gateway',
	[503] = 'Service Unavailable', [505] = 'HTTP Version Not Supported',
}
M.REASONS = REASONS

-- Status lines, made once per code.
local status_lines = {}
local function status_line(code)
	local line = status_lines[code]
	if not line then
		line = format('HTTP/1.1 %d %s\r\n', code, REASONS[code] or 'Status')
		status_lines[code] = line
	end
	return line
end

-- Statuses whose responses have no body (RFC 9110 6.4.1).
local function bodiless(code)
	return code < 200 or code == 204 or code == 304
end

-- Clocks read through the FFI, which the JIT compiles into the request's trace where
-- os.time or loop.now would leave it: the wall clock in whole seconds (for Date) and a
-- coarse monotonic clock (for deadlines). Without clock_gettime (another declaration of
-- it in this process differs), os.time and loop.now.
local wall_seconds, mono_seconds = os.time, loop.now
do
	local ok = pcall(ffi.cdef, [[
		typedef struct { long sec; long nsec; } socketloop_httpserver_timespec;
		int clock_gettime(int clock, socketloop_httpserver_timespec *ts);
	]])
	if ok and ffi.os == 'Linux' then
		local ts = ffi.new('socketloop_httpserver_timespec')
		local CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE = 5, 6
		local C = ffi.C
		if pcall(function() return C.clock_gettime(CLOCK_MONOTONIC_COARSE, ts) end) then
			wall_seconds = function()
				C.clock_gettime(CLOCK_REALTIME_COARSE, ts)
				return tonumber(ts.sec)
			end
			mono_seconds = function()
				C.clock_gettime(CLOCK_MONOTONIC_COARSE, ts)
				return tonumber(ts.sec) + tonumber(ts.nsec) * 1e-9
			end
		end
	end
end

-- The Date header line, made again only when the second changes.
local date_second, date_line = -1, nil
local function date_header()
	local t = wall_seconds()
	if t ~= date_second then
		date_second = t
		date_line = os_date('!Date: %a, %d %b %Y %H:%M:%S GMT\r\n', t)
	end
	return date_line
end
M.date_header = date_header

-- ------------------------------------------------------------------ options

local DEFAULTS = {
	max_line = 8192,          -- bytes in one head line (request line or field line)
	max_head = 65536,         -- bytes in the whole head
	max_fields = 100,         -- header fields in one head
	max_body = 1048576,       -- bytes of one request body (Content-Length or chunked)
	idle_timeout = 60,        -- seconds a connection may wait for (all of) its next request line
	request_timeout = 30,     -- seconds the rest of the head and the body may take
	send_timeout = 60,        -- seconds a response write may wait for the client to read
	default_type = 'text/plain', -- Content-Type of responses whose handler set none
	server_name = false,      -- a Server header value, or false for none
}

local function option_error(name, want, got)
	error(format("bad argument #1 to 'new' (%s: %s expected, got %s)", name, want, got), 3)
end

-- The options with defaults filled in; raises on a wrong type or value.
local function check_options(opts)
	if type(opts) ~= 'table' then
		error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ')', 3)
	end
	if type(opts.handler) ~= 'function' then
		option_error('handler', 'function', type(opts.handler))
	end
	local o = {handler = opts.handler, host = opts.host or '*', port = opts.port or 0}
	if type(o.host) ~= 'string' then option_error('host', 'string', type(o.host)) end
	if type(o.port) ~= 'number' then option_error('port', 'number', type(o.port)) end
	for name, default in pairs(DEFAULTS) do
		local v = opts[name]
		if v == nil then v = default end
		if type(default) == 'number' then
			if type(v) ~= 'number' then option_error(name, 'number', type(v)) end
			if v ~= v or v <= 0 or v == math.huge then
				option_error(name, 'positive finite number', tostring(v))
			end
			if name:sub(1, 4) == 'max_' and (v % 1 ~= 0 or v > 2^52) then
				option_error(name, 'whole number', tostring(v))
			end
		elseif name == 'default_type' then
			if type(v) ~= 'string' or find(v, '\r', 1, true) or find(v, '\n', 1, true) then
				option_error(name, 'string without CR or LF', type(v))
			end
		elseif v ~= false and (type(v) ~= 'string' or find(v, '\r', 1, true) or find(v, '\n', 1, true)) then
			option_error(name, 'string without CR or LF, or false', type(v))
		end
		o[name] = v
	end
	-- tls: TLS parameters or a context (docs/tls.md): serve https.
	if opts.tls ~= nil then
		if not require'socketloop.tls'.is_tls(opts.tls) then
			option_error('tls', 'TLS parameters or context', type(opts.tls))
		end
		o.tls = opts.tls
	end
	return o
end

-- ------------------------------------------------------------ the response

-- Response states.
local FRESH, STREAMING, DONE = 0, 1, 2

-- Where a response (or the next piece of a streamed one) is assembled before it is
-- joined into one string to send. One for all connections: it is filled and joined
-- with no wait in between, so no other thread sees it half full.
local PARTS = {}

local Response = {}
Response.__index = Response

-- Adds a header field to the response. Content-Length, Transfer-Encoding, Connection
-- and Date are the server's to send and are refused.
function Response:header(name, value)
	if type(name) ~= 'string' or name == '' then
		error("bad argument #1 to 'header' (non-empty string expected, got " .. type(name) .. ')', 2)
	end
	local vt = type(value)
	if vt == 'number' then
		value = tostring(value)
	elseif vt ~= 'string' then
		error("bad argument #2 to 'header' (string expected, got " .. vt .. ')', 2)
	end
	if find(name, '[^%w!#$%%&\'*+%-.^_`|~]') then
		error("bad argument #1 to 'header' (invalid header name)", 2)
	end
	if find(value, '\r', 1, true) or find(value, '\n', 1, true) then
		error("bad argument #2 to 'header' (CR or LF in a header value)", 2)
	end
	if self.state ~= FRESH then
		error("calling 'header' after the response head was sent", 2)
	end
	local lname = lower(name)
	if lname == 'content-length' or lname == 'transfer-encoding' or lname == 'connection'
			or lname == 'date' then
		error("bad argument #1 to 'header' (" .. name .. ' is set by the server)', 2)
	end
	if lname == 'content-type' then self.typed = true end
	local n = self.nfields + 1
	local fields = self.fields
	if not fields then
		fields = {}
		self.fields = fields
	end
	fields[n] = name .. ': ' .. value .. '\r\n'
	self.nfields = n
	return self
end

-- Appends the response head to the connection's parts (from index 1); returns the count.
-- `length`: the Content-Length to send, or false for a chunked or close-delimited body.
local function put_head(c, res, length)
	local parts, status = PARTS, res.status
	parts[1] = status_line(status)
	parts[2] = date_header()
	local n = 2
	if c.server_line then
		n = n + 1
		parts[n] = c.server_line
	end
	for i = 1, res.nfields do
		parts[n + i] = res.fields[i]
	end
	n = n + res.nfields
	local nobody = bodiless(status)
	if not res.typed and not nobody then
		n = n + 1
		parts[n] = c.type_line
	end
	if length then
		if not nobody then
			n = n + 1
			parts[n] = 'Content-Length: ' .. length .. '\r\n'
		end
	elseif c.minor == 1 then
		n = n + 1
		parts[n] = 'Transfer-Encoding: chunked\r\n'
	else
		c.keepalive = false -- an HTTP/1.0 client reads such a body until the close
	end
	if res.close or c.server.closing then c.keepalive = false end
	if not c.keepalive then
		n = n + 1
		parts[n] = 'Connection: close\r\n'
	elseif c.minor == 0 then
		n = n + 1
		parts[n] = 'Connection: keep-alive\r\n'
	end
	n = n + 1
	parts[n] = '\r\n'
	return n
end

-- Sends PARTS[1..n] with one send; false when the connection failed. Lets go of the
-- body parts (from index `body`), the only ones that may be big, before the send may
-- wait.
local function send_parts(c, n, body)
	local parts = PARTS
	local data = concat(parts, '', 1, n)
	if body then
		for i = body, n do parts[i] = nil end
	end
	local ok = c.skt:send(data)
	if not ok then
		c.keepalive = false
		c.broken = true
	end
	return ok ~= nil
end

-- Sends the whole response: `body` a string or an array of strings (nil: empty).
-- Returns true, or nil and 'closed' when the connection failed.
function Response:send(body)
	if self.state ~= FRESH then
		error("calling 'send' on a response already " .. (self.state == DONE and 'sent' or 'being streamed'), 2)
	end
	local code = self.status
	if type(code) ~= 'number' or code < 100 or code > 999 or code % 1 ~= 0 then
		error('res.status is not a status code: ' .. tostring(code), 2)
	end
	local c = self.conn
	local bt, length = type(body), 0
	if bt == 'string' then
		length = #body
	elseif bt == 'table' then
		for i = 1, #body do
			local part = body[i]
			if type(part) ~= 'string' then
				error("bad argument #1 to 'send' (part " .. i .. ' is a ' .. type(part) .. ', not a string)', 2)
			end
			length = length + #part
		end
	elseif body ~= nil then
		error("bad argument #1 to 'send' (string or table expected, got " .. bt .. ')', 2)
	end
	self.state = DONE
	local n = put_head(c, self, length)
	local from = false
	if not c.head_only and not bodiless(code) then
		from = n + 1
		if bt == 'string' then
			n = n + 1
			PARTS[n] = body
		elseif bt == 'table' then
			for i = 1, #body do PARTS[n + i] = body[i] end
			n = n + #body
		end
	end
	if send_parts(c, n, from) then return true end
	return nil, 'closed'
end

-- Streams a piece of the body: the head goes out with the first piece (chunked for an
-- HTTP/1.1 client, else the body ends with the connection). Returns true, or nil and
-- 'closed'.
function Response:write(data)
	if type(data) ~= 'string' then
		error("bad argument #1 to 'write' (string expected, got " .. type(data) .. ')', 2)
	end
	if self.state == DONE then
		error("calling 'write' on a response already sent", 2)
	end
	local c = self.conn
	if c.broken then return nil, 'closed' end
	local n = 0
	if self.state == FRESH then
		self.state = STREAMING
		n = put_head(c, self, false)
		if c.head_only or bodiless(self.status) then
			if send_parts(c, n) then return true end
			return nil, 'closed'
		end
	elseif c.head_only or bodiless(self.status) then
		return true
	end
	local from = n + 1
	if #data > 0 then
		local parts = PARTS
		if c.minor == 1 then
			parts[n + 1] = format('%x\r\n', #data)
			parts[n + 2] = data
			parts[n + 3] = '\r\n'
			n = n + 3
		else
			n = n + 1
			parts[n] = data
		end
	end
	if n == 0 then return true end
	if send_parts(c, n, from) then return true end
	return nil, 'closed'
end

-- Ends a streamed response (sends the head if nothing was written yet). Returns true,
-- or nil and 'closed'.
function Response:finish()
	if self.state == FRESH then return self:send() end
	if self.state == DONE then return true end
	self.state = DONE
	local c = self.conn
	if c.broken then return nil, 'closed' end
	if c.minor == 1 and not c.head_only and not bodiless(self.status) then
		PARTS[1] = '0\r\n\r\n'
		if not send_parts(c, 1) then return nil, 'closed' end
	end
	return true
end

-- ------------------------------------------------------------- the request

local Request = {}
Request.__index = Request

-- ---------------------------------------------------------- reading a head

-- The outcome of reading a request, besides success: an error status to answer (and
-- close), or CLOSE to close without answering.
local CLOSE = 0

local SP, HT = 32, 9

-- The bytes of a token (RFC 9110 5.6.2): header field names and methods.
local TOKEN = {}
for b = 0, 255 do TOKEN[b] = false end
for b in ("!#$%&'*+-.^_`|~"):gmatch('.') do TOKEN[b:byte()] = true end
for b = 48, 57 do TOKEN[b] = true end
for b = 65, 90 do TOKEN[b] = true end
for b = 97, 122 do TOKEN[b] = true end

-- True when line[1..last] is a token.
local function is_token(line, last)
	if last < 1 then return false end
	for i = 1, last do
		if not TOKEN[byte(line, i)] then return false end
	end
	return true
end

-- A header field value without the blanks around it, from line[from..].
local function field_value(line, from)
	local last = #line
	while from <= last do
		local b = byte(line, from)
		if b ~= SP and b ~= HT then break end
		from = from + 1
	end
	while last >= from do
		local b = byte(line, last)
		if b ~= SP and b ~= HT then break end
		last = last - 1
	end
	return sub(line, from, last)
end

-- True when `s` is one or more decimal digits (at most 15: below 2^53).
local function digits(s)
	local n = #s
	if n == 0 or n > 15 then return false end
	for i = 1, n do
		local b = byte(s, i)
		if b < 48 or b > 57 then return false end
	end
	return true
end

-- The failure of a head receive as the status to answer: a line over the limit, or
-- CLOSE for a client that went away or was too slow (the sweeper closed its socket).
local function head_failure(err, toolong)
	if err == 'receive limit exceeded' then return toolong end
	return CLOSE
end

-- Reads the request line and header fields into `req`. Returns true, or a status.
local function read_head(c, skt, req)
	local o = c.opts
	c.idle, c.deadline = true, mono_seconds() + o.idle_timeout
	local line, err = skt:receive('*l')
	if line == '' then
		-- RFC 9112 2.2: an empty line before a request line is ignored.
		line, err = skt:receive('*l')
	end
	if not line then
		return head_failure(err, 414)
	end
	c.idle, c.deadline = false, mono_seconds() + o.request_timeout
	c.server.requests = c.server.requests + 1
	local m1 = find(line, ' ', 1, true)
	local m2 = m1 and find(line, ' ', m1 + 1, true)
	if not m2 or m2 == m1 + 1 or not is_token(line, m1 - 1) then return 400 end
	local version = sub(line, m2 + 1)
	if version == 'HTTP/1.1' then
		c.minor = 1
	elseif version == 'HTTP/1.0' then
		c.minor = 0
	elseif #version == 8 and sub(version, 1, 5) == 'HTTP/' then
		c.minor = 0
		return 505
	else
		return 400
	end
	local method, target = sub(line, 1, m1 - 1), sub(line, m1 + 1, m2 - 1)
	req.method, req.target, req.minor = method, target, c.minor
	req.version = c.minor == 1 and '1.1' or '1.0'
	local q = find(target, '?', 1, true)
	if q then
		req.path, req.query = sub(target, 1, q - 1), sub(target, q + 1)
	else
		req.path, req.query = target, nil
	end
	local headers = req.headers
	clear(headers)
	local size, nfields = #line, 0
	local max_head, max_fields = o.max_head, o.max_fields
	while true do
		line, err = skt:receive('*l')
		if not line then return head_failure(err, 431) end
		if line == '' then break end
		size = size + #line
		nfields = nfields + 1
		if size > max_head or nfields > max_fields then return 431 end
		local colon = find(line, ':', 1, true)
		-- A token before the colon: no blank there nor at the start (obsolete line
		-- folding), RFC 9112 5.
		if not colon or not is_token(line, colon - 1) then return 400 end
		local name = lower(sub(line, 1, colon - 1))
		local value = field_value(line, colon + 1)
		local previous = headers[name]
		if previous then
			headers[name] = previous .. ', ' .. value
		else
			headers[name] = value
		end
	end
	if c.minor == 1 and not headers.host then return 400 end
	local connection = headers.connection
	if connection then
		connection = lower(connection)
		if find(connection, 'close', 1, true) then
			c.keepalive = false
		elseif c.minor == 0 then
			c.keepalive = find(connection, 'keep-alive', 1, true) ~= nil
		end
	else
		c.keepalive = c.minor == 1
	end
	return true
end

-- Receives exactly n bytes of body, lifting the line limit for the call.
local function receive_bytes(c, skt, n)
	if n <= c.opts.max_line then
		return skt:receive(n)
	end
	skt:setoption('receive-limit', n)
	local data, err = skt:receive(n)
	skt:setoption('receive-limit', c.opts.max_line)
	return data, err
end

-- The size of a chunk from its size line (extensions after ';' ignored), or nil.
local function chunk_size(line)
	local n, size = #line, 0
	local semi = find(line, ';', 1, true)
	if semi then n = semi - 1 end
	while n > 0 do -- blanks before the extensions (RFC 9112 7.1.1's BWS)
		local b = byte(line, n)
		if b ~= SP and b ~= HT then break end
		n = n - 1
	end
	if n == 0 or n > 13 then return nil end
	for i = 1, n do
		local b = byte(line, i)
		local d
		if b >= 48 and b <= 57 then
			d = b - 48
		elseif b >= 97 and b <= 102 then
			d = b - 87
		elseif b >= 65 and b <= 70 then
			d = b - 55
		else
			return nil
		end
		size = size * 16 + d
	end
	return size
end

-- Reads a chunked body into req.body. Returns true, or a status.
local function read_chunked(c, skt, req)
	local o = c.opts
	local pieces, total = {}, 0
	local n = 0
	while true do
		local line, err = skt:receive('*l')
		if not line then return head_failure(err, 400) end
		local size = chunk_size(line)
		if not size then return 400 end
		if size == 0 then break end
		total = total + size
		if total > o.max_body then return 413 end
		local data = receive_bytes(c, skt, size)
		if not data then return CLOSE end
		n = n + 1
		pieces[n] = data
		line = skt:receive('*l')
		if line ~= '' then return line and 400 or CLOSE end
	end
	-- The trailer: fields are read (bounded like the head) and dropped.
	local size, nfields = 0, 0
	while true do
		local line, err = skt:receive('*l')
		if not line then return head_failure(err, 431) end
		if line == '' then break end
		size, nfields = size + #line, nfields + 1
		if size > o.max_head or nfields > o.max_fields then return 431 end
	end
	req.body = n == 1 and pieces[1] or concat(pieces, '', 1, n)
	return true
end

-- Reads the request body (answering Expect: 100-continue first). Returns true, or a
-- status.
local function read_body(c, skt, req)
	local headers = req.headers
	local te, cl = headers['transfer-encoding'], headers['content-length']
	local chunked = false
	if te then
		-- Both framings at once is how requests are smuggled: refused (RFC 9112 6.3).
		if cl then return 400 end
		if lower(te) ~= 'chunked' then return 501 end
		chunked = true
	end
	local length = 0
	if cl and not chunked then
		if not digits(cl) then return 400 end
		length = tonumber(cl)
		if length > c.opts.max_body then return 413 end
	end
	local expect = headers.expect
	if expect then
		if lower(expect) ~= '100-continue' then return 417 end
		if c.minor == 1 and (chunked or length > 0) then
			if not skt:send('HTTP/1.1 100 Continue\r\n\r\n') then return CLOSE end
		end
	end
	if chunked then return read_chunked(c, skt, req) end
	if length == 0 then
		req.body = ''
		return true
	end
	local body = receive_bytes(c, skt, length)
	if not body then return CLOSE end
	req.body = body
	return true
end

-- ------------------------------------------------------------ a connection

-- Answers an error status with a short body and closes the connection.
local function refuse(c, res, code)
	if res.state ~= FRESH then return end
	c.keepalive = false
	res.status = code
	res.nfields, res.typed = 0, false
	res:send(REASONS[code] and (REASONS[code] .. '\n') or '')
end

-- Reports an error raised by the handler through the loop's error handler.
local function on_handler_error(err)
	S.report(err, traceback(tostring(err), 2), S.running())
	return err
end

-- Closes the connections whose deadline has passed (idle too long, or too slow to send
-- a request), and the idle ones once the loop is shutting down (loop.shutdown, or the
-- runner's SIGTERM, closed the listening socket). Runs while the server has
-- connections: a server without any has no thread, so it never holds up a shutdown.
local close_server
local function sweep(server)
	local interval = math.min(0.25, server.opts.idle_timeout / 4, server.opts.request_timeout / 4)
	local conns = server.conns
	while next(conns) ~= nil do
		loop.sleep(interval)
		if not server.closing and loop.shuttingdown() then
			close_server(server)
		end
		local t = mono_seconds()
		for skt, c in pairs(conns) do
			if c.deadline <= t then
				server.timeouts = server.timeouts + 1
				skt:close()
			end
		end
	end
	server.sweeper = false
end

-- Serves one connection: reads requests and answers them in order until either side
-- closes, a limit or timeout is hit, or the server closes.
local function serve(server, skt)
	local o = server.opts
	server.connections = server.connections + 1
	skt:setoption('receive-limit', o.max_line)
	-- A backstop for each wait; the sweeper enforces the idle and request deadlines.
	skt:settimeout(math.max(o.idle_timeout, o.request_timeout, o.send_timeout))
	local c = {
		server = server, skt = skt, opts = o,
		minor = 1, keepalive = true, head_only = false, broken = false,
		idle = true, deadline = math.huge,
		type_line = 'Content-Type: ' .. o.default_type .. '\r\n',
		server_line = o.server_name and ('Server: ' .. o.server_name .. '\r\n') or false,
	}
	server.conns[skt] = c
	if not server.sweeper then
		server.sweeper = loop.newthread(sweep, server)
	end
	local req = setmetatable({headers = {}, socket = skt, body = '', server = server}, Request)
	local res = setmetatable({conn = c, server = server, status = 200, fields = false, nfields = 0,
		typed = false, state = FRESH, close = false}, Response)
	local handler = o.handler
	while not server.closing do
		res.status, res.nfields, res.typed, res.state, res.close = 200, 0, false, FRESH, false
		c.head_only = false
		local outcome = read_head(c, skt, req)
		if outcome == true then
			c.head_only = req.method == 'HEAD'
			outcome = read_body(c, skt, req)
		end
		c.deadline = math.huge
		if outcome ~= true then
			if outcome ~= CLOSE then refuse(c, res, outcome) end
			break
		end
		local ok = xpcall(handler, on_handler_error, req, res)
		if not ok then
			refuse(c, res, 500)
			break
		end
		if res.state ~= DONE then res:finish() end
		if not c.keepalive then break end
	end
	server.conns[skt] = nil
	skt:close()
end

-- ----------------------------------------------------------------- a server

local Server = {}
Server.__index = Server

-- The address and port the server listens on.
function Server:getsockname()
	return self.socket:getsockname()
end

-- Counts: {connections = accepted so far, requests = request lines read, open =
-- connections open now, timeouts = connections closed for a deadline}.
function Server:stats()
	local open = 0
	for _ in pairs(self.conns) do open = open + 1 end
	return {connections = self.connections, requests = self.requests, open = open,
		timeouts = self.timeouts}
end

-- Stops accepting and closes the connections waiting for a request; a connection in
-- the middle of a request gets its response (with Connection: close) and is closed
-- after it. With `grace` (seconds), connections still open after it are closed at once.
function Server:close(grace)
	if grace ~= nil and (type(grace) ~= 'number' or grace ~= grace or grace < 0) then
		error("bad argument #1 to 'close' (non-negative number expected, got " .. tostring(grace) .. ')', 2)
	end
	if self.closing then return 1 end
	self.closing = true
	self.socket:close()
	for skt, c in pairs(self.conns) do
		if c.idle then skt:close() end
	end
	if grace and next(self.conns) then
		local conns = self.conns
		loop.newthread(function()
			local deadline = loop.now() + grace
			while next(conns) and loop.now() < deadline do
				loop.sleep(math.min(0.05, deadline - loop.now()))
			end
			for skt in pairs(conns) do skt:close() end
		end)
	end
	return 1
end
close_server = Server.close

-- Starts a server: see the top of this file and docs/httpserver.md. Returns the server,
-- or nil and an error message when it cannot listen.
function M.new(opts)
	local o = check_options(opts)
	local server = setmetatable({
		opts = o, connections = 0, requests = 0, timeouts = 0, closing = false,
		conns = {},   -- socket -> its connection state, while open
		sweeper = false,  -- the sweeping thread while there are connections
	}, Server)
	local socket, err = loop.newserver(o.host, o.port, function(skt) return serve(server, skt) end,
		o.tls and {tls = o.tls} or nil)
	if not socket then return nil, err end
	server.socket = socket
	return server
end

return M
