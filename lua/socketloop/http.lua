-- socketloop.http: HTTP/1.1 requests from loop threads, with the call shapes and return
-- values of LuaSocket's socket.http. docs/http.md documents it.
--
--   http.request(url [, body]) -> body, code, headers, status | nil, err
--   http.request{url=, method=, headers=, source=, sink=, step=, redirect=,
--                maxredirects=, timeout=, create=, maxsize=, keepalive=}
--                              -> 1, code, headers, status | nil, err
--
-- This file decides what to send and what to do with the answer (redirects, retries,
-- the keep-alive pool); socketloop.http.wire does the bytes, socketloop.http.url the
-- URLs, socketloop.http.pool the idle connections.

local loop = require'socketloop'
local core = require'socketloop.core'
local A = require'socketloop.asocket'
local ltn12 = require'socketloop.ltn12'
local U = require'socketloop.http.url'
local P = require'socketloop.http.pool'
local W = require'socketloop.http.wire'

local now = core.now
local type, pairs, tostring, error, pcall = type, pairs, tostring, error, pcall

local http = {
	-- Seconds each connect and each wait for the server may take (timeout= overrides).
	TIMEOUT = 60,
	-- The User-Agent sent unless the request's headers name one.
	USERAGENT = 'socketloop/' .. (loop._VERSION:match('[%d.]+$') or '0'),
	-- Redirects followed before a request fails with 'too many redirects'.
	MAXREDIRECTS = 5,
	-- Idle keep-alive connections kept per host:port.
	MAXIDLE = 32,
	-- Seconds an idle connection stays reusable.
	IDLETIMEOUT = 30,
	-- Bytes a response body may have (nil: no limit; maxsize= overrides).
	MAXSIZE = nil,
}

-- Methods a request may be sent again for, on a fresh connection, when a kept-alive
-- one turns out to have been closed by the server before it answered.
local IDEMPOTENT = {GET = true, HEAD = true, OPTIONS = true, TRACE = true, PUT = true, DELETE = true}
local REDIRECT = {[301] = true, [302] = true, [303] = true, [307] = true, [308] = true}
local BODY_METHOD = {POST = true, PUT = true, PATCH = true}
-- Most bytes of a redirect's own body read (and dropped) to keep its connection.
local REDIRECT_BODY_LIMIT = 65536

local function is_callable(f)
	if type(f) == 'function' then return true end
	local mt = getmetatable(f)
	return mt ~= nil and type(mt) == 'table' and mt.__call ~= nil
end

-- Raises a misuse error. `level`, here and below, is the level of the user's call as
-- seen from the function it is passed to.
local function misuse(what, level)
	error("bad argument #1 to 'request' (" .. what .. ')', level)
end

local function check_field(reqt, name, ok, expected, level)
	if not ok then
		misuse(("field '%s': %s expected, got %s"):format(name, expected, type(reqt[name])), level + 1)
	end
end

-- The request's headers with lower-case names, checked: a name or value that could
-- split the head (CR, LF, or ':' in a name) is misuse.
local function lower_headers(headers, level)
	local out = {}
	if headers == nil then return out end
	for name, value in pairs(headers) do
		if type(name) ~= 'string' or name == '' or name:find('[%c%s:]') then
			misuse("invalid header name '" .. tostring(name) .. "'", level + 1)
		end
		if type(value) == 'number' then value = tostring(value) end
		if type(value) ~= 'string' or value:find('[\r\n]') then
			misuse("invalid value for header '" .. name .. "'", level + 1)
		end
		out[name:lower()] = value
	end
	return out
end

-- The request table checked and completed into the options a request runs with.
-- Misuse raises, naming the field.
local function options(reqt, body, level)
	local url = reqt.url
	check_field(reqt, 'url', type(url) == 'string', 'string', level + 1)
	local method = reqt.method
	check_field(reqt, 'method', method == nil or type(method) == 'string', 'string', level + 1)
	if method and not method:match('^[%w!#$%%&\'*+.^_`|~-]+$') then
		misuse("field 'method': invalid method '" .. method .. "'", level + 1)
	end
	check_field(reqt, 'headers', reqt.headers == nil or type(reqt.headers) == 'table', 'table', level + 1)
	for _, name in ipairs{'source', 'sink', 'step', 'create'} do
		check_field(reqt, name, reqt[name] == nil or is_callable(reqt[name]), 'function', level + 1)
	end
	check_field(reqt, 'redirect', reqt.redirect == nil or type(reqt.redirect) == 'boolean', 'boolean', level + 1)
	check_field(reqt, 'keepalive', reqt.keepalive == nil or type(reqt.keepalive) == 'boolean', 'boolean', level + 1)
	local maxredirects = reqt.maxredirects
	check_field(reqt, 'maxredirects', maxredirects == nil or maxredirects == false
		or type(maxredirects) == 'number', 'number or false', level + 1)
	local maxsize = reqt.maxsize
	check_field(reqt, 'maxsize', maxsize == nil or type(maxsize) == 'number', 'number', level + 1)
	local timeout = reqt.timeout
	local connect_t, read_t, total_t = http.TIMEOUT, http.TIMEOUT, nil
	if type(timeout) == 'number' then
		connect_t, read_t = timeout, timeout
	elseif type(timeout) == 'table' then
		for _, k in ipairs{'connect', 'read', 'total'} do
			if timeout[k] ~= nil and type(timeout[k]) ~= 'number' then
				misuse(("field 'timeout.%s': number expected, got %s"):format(k, type(timeout[k])), level + 1)
			end
		end
		connect_t = timeout.connect or connect_t
		read_t = timeout.read or read_t
		total_t = timeout.total
	else
		check_field(reqt, 'timeout', timeout == nil, 'number or table', level + 1)
	end
	if read_t and read_t < 0 then read_t = nil end
	if connect_t and connect_t < 0 then connect_t = nil end
	return {
		url = url,
		method = method and method:upper() or (body and 'POST' or 'GET'),
		headers = lower_headers(reqt.headers, level + 1),
		body = body,
		source = reqt.source,
		sink = reqt.sink or ltn12.sink.null(),
		step = reqt.step,
		redirect = reqt.redirect ~= false,
		maxredirects = maxredirects == nil and http.MAXREDIRECTS or maxredirects,
		maxsize = maxsize or http.MAXSIZE,
		create = reqt.create,
		poolable = reqt.create == nil and reqt.keepalive ~= false,
		connect_timeout = connect_t,
		timeout = read_t,
		deadline = total_t and now() + total_t,
		proxy = reqt.proxy,
	}
end

-- The socket for a request: an idle kept-alive one, or a new connection (made by the
-- request's `create` when it has one). Returns the connection table or nil, err.
local function open(o, u, key, fresh)
	if o.poolable and not fresh then
		local sock = P.take(key, http.IDLETIMEOUT)
		if sock then
			sock:settimeout(o.timeout)
			sock:settimeout(nil, 't')
			return {sock = sock, deadline = o.deadline, key = key, reused = true}
		end
	end
	local sock, err
	if o.create then
		sock, err = o.create()
		if not sock then return nil, err end
		-- A plain LuaSocket (or similar) object would block the whole loop: wrap it.
		local kind = type(sock)
		if (kind == 'table' or kind == 'userdata') and not A.is_asocket(sock)
				and type(sock.getfd) == 'function' then
			sock = loop.wrap(sock)
		end
	else
		sock = loop.tcp()
		sock:setoption('receive-limit', W.RECEIVE_LIMIT)
	end
	local limit = o.connect_timeout
	if o.deadline then
		local left = o.deadline - now()
		if left <= 0 then
			sock:close()
			return nil, 'timeout'
		end
		if not limit or left < limit then limit = left end
	end
	sock:settimeout(limit)
	local ok
	ok, err = sock:connect(u.host, u.port)
	if not ok then
		sock:close()
		return nil, err
	end
	sock:settimeout(o.timeout)
	return {sock = sock, deadline = o.deadline, key = key, reused = false}
end

-- Hands a connection back to the pool when it can carry another request, or closes it.
local function release(o, st, c, reusable)
	st.conn = nil
	if reusable and o.poolable then
		P.put(c.key, c.sock, http.MAXIDLE, http.IDLETIMEOUT)
	else
		c.sock:close()
	end
end

-- The header fields sent for one hop to `u`: ours, then the caller's over them.
local function request_headers(o, u, method, body, source)
	local h = {host = U.hostheader(u), ['user-agent'] = http.USERAGENT}
	h.authorization = U.credentials(u)
	for name, value in pairs(o.headers) do h[name] = value end
	if body then
		h['content-length'] = h['content-length'] or tostring(#body)
	elseif source then
		if not h['content-length'] and not h['transfer-encoding'] then
			h['transfer-encoding'] = 'chunked'
		end
	elseif BODY_METHOD[method] and not h['content-length'] and not h['transfer-encoding'] then
		h['content-length'] = '0'
	end
	if not o.poolable and not h.connection then h.connection = 'close' end
	return h
end

-- Sends the request and reads the response head, on a kept-alive connection if there
-- is one, retrying once on a new connection when the kept-alive one was closed by the
-- server before any of the response came (for idempotent requests without a source).
-- Returns the connection, code, headers, status line, minor version; or nil, err.
local function exchange(o, st, u, method, body, source)
	local key = u.host .. ':' .. u.port
	local h = request_headers(o, u, method, body, source)
	local head = W.request_head(method, U.target(u), h)
	local chunked = source and W.has_token(h['transfer-encoding'], 'chunked')
	local retry = source == nil and IDEMPOTENT[method]
	for attempt = 1, 2 do
		local c, err = open(o, u, key, attempt > 1)
		if not c then return nil, err end
		st.conn = c
		local ok
		if body and #body <= W.BLOCK then
			ok, err = W.send(c, head .. body)
		else
			ok, err = W.send(c, head)
			if ok and body then ok, err = W.send(c, body) end
		end
		if ok and source then
			ok, err = ltn12.pump.all(source, W.body_sink(c, chunked), o.step)
		end
		local started = false
		if ok then
			local code, reason, headers, minor, status = W.read_response(c)
			if code then return c, code, headers, status, minor end
			err, started = reason, headers
		end
		release(o, st, c, false)
		if not (retry and c.reused and not started) then return nil, err end
	end
end

-- Where a redirect goes: the new method and whether the body goes along; nil when the
-- response is not to be followed.
local function redirect_method(code, method, body, source)
	if code == 303 or ((code == 301 or code == 302) and method == 'POST') then
		return method == 'HEAD' and 'HEAD' or 'GET', false
	end
	if source then return nil end -- already consumed: cannot be sent again
	return method, true
end

-- Reads and drops a redirect's own body so its connection can be reused; closes the
-- connection instead when the body is delimited by the close or too large.
local function skip_body(o, st, c, code, kind, length, headers, minor)
	if kind == 'close' then
		return release(o, st, c, false)
	end
	local src, state = W.body_source(c, kind, length, headers, REDIRECT_BODY_LIMIT)
	local ok = ltn12.pump.all(src, ltn12.sink.null())
	release(o, st, c, ok and state.done and W.reusable(code, minor, headers, kind))
end

-- One request, following redirects. `st.conn` is the connection in use, for the
-- caller to close should a source or sink raise an error.
local function run(o, st)
	local u, err = U.parse(o.url)
	if not u then return nil, err end
	local method, body, source = o.method, o.body, o.source
	local nredirects, location = 0, nil
	while true do
		if u.scheme == 'https' then
			return nil, 'https is not supported (no TLS yet): ' .. o.url
		elseif u.scheme ~= 'http' then
			return nil, "unsupported scheme '" .. u.scheme .. "'"
		end
		local c, code, headers, status, minor = exchange(o, st, u, method, body, source)
		if not c then return nil, code end
		local kind, length = W.framing(method, code, headers)
		if not kind then
			release(o, st, c, false)
			return nil, length
		end
		local target = o.redirect and REDIRECT[code] and headers.location
		local newmethod, keepbody
		if target and target:match('%S') then
			newmethod, keepbody = redirect_method(code, method, body, source)
		end
		local nu
		if newmethod then
			o.url = U.absolute(u, target)
			nu, err = U.parse(o.url)
			if nu and nu.scheme ~= 'http' and nu.scheme ~= 'https' then
				newmethod = nil -- as LuaSocket: a redirect elsewhere is the answer
			end
		end
		if not newmethod then
			local src, state = W.body_source(c, kind, length, headers, o.maxsize)
			local ok, perr = ltn12.pump.all(src, o.sink, o.step)
			release(o, st, c, ok and state.done and W.reusable(code, minor, headers, kind))
			if not ok then return nil, perr end
			if location then headers.location = headers.location or location end
			return 1, code, headers, status
		end
		skip_body(o, st, c, code, kind, length, headers, minor)
		if not nu then return nil, err end
		nredirects = nredirects + 1
		if o.maxredirects and nredirects > o.maxredirects then
			return nil, 'too many redirects'
		end
		if nu.host ~= u.host or nu.port ~= u.port then
			-- Credentials given for one server are not handed to another.
			o.headers.authorization, o.headers.cookie = nil, nil
		end
		if not keepbody then
			body, source = nil, nil
			o.headers['content-length'], o.headers['content-type'] = nil, nil
			o.headers['transfer-encoding'] = nil
		end
		method, u, location = newmethod, nu, target
	end
end

-- Runs a request; if a source, sink or create function raises, the connection in use
-- is closed and the error goes on to the caller.
local function perform(reqt, body, level)
	local o = options(reqt, body, level + 1)
	if o.proxy then return nil, 'proxies are not supported' end
	local st = {}
	local ok, a, b, c, d = pcall(run, o, st)
	if not ok then
		if st.conn then st.conn.sock:close() end
		error(a, 0)
	end
	return a, b, c, d
end

function http.request(reqt, body)
	if type(reqt) == 'string' then
		if body ~= nil and type(body) ~= 'string' then
			error("bad argument #2 to 'request' (string expected, got " .. type(body) .. ')', 2)
		end
		local t = {}
		local simple = {url = reqt, sink = ltn12.sink.table(t)}
		if body then
			simple.headers = {['content-type'] = 'application/x-www-form-urlencoded'}
		end
		local ok, code, headers, status = perform(simple, body, 3)
		if not ok then return nil, code end
		return table.concat(t), code, headers, status
	elseif type(reqt) == 'table' then
		return perform(reqt, nil, 3)
	end
	error("bad argument #1 to 'request' (string or table expected, got " .. type(reqt) .. ')', 2)
end

-- Closes every idle kept-alive connection (they are closed when collected otherwise).
function http.closeidle()
	P.closeall()
end

-- How many kept-alive connections are idle, in all and (given a host and port) to that
-- server.
function http.idlecount(host, port)
	return P.stats(host and (host:lower() .. ':' .. tostring(port or 80)))
end

return http
