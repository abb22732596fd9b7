-- socketloop.http: HTTP/1.1 requests from loop threads, with the call shapes and return
-- values of LuaSocket's socket.http. docs/http.md documents it.
--
--   http.request(url [, body]) -> body, code, headers, status | nil, err
--   http.request{url=, method=, headers=, source=, sink=, step=, redirect=,
--                maxredirects=, timeout=, create=, maxsize=, maxhead=, keepalive=,
--                decompress=, cookies=, proxy=, proxytunnel=}
--                              -> 1, code, headers, status, url, redirects | nil, err
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
local TLS = require'socketloop.tls'
local C = require'socketloop.http.cookies'

local now = core.now
local type, pairs, next, tostring, error, pcall, unpack = type, pairs, next, tostring, error, pcall, unpack

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
	-- Bytes a response body may have (nil: no limit; maxsize= overrides). A body that is
	-- decoded (decompress=) is measured decoded.
	MAXSIZE = nil,
	-- Bytes a response head may have, all its lines together (maxhead= overrides).
	MAXHEAD = W.MAXHEAD,
}

-- The fields that came more than once in a response head, unjoined: headers -> name ->
-- list of values (see http.values).
local repeated_fields = setmetatable({}, {__mode = 'k'})

-- Methods a request may be sent again for, on a fresh connection, when a kept-alive
-- one turns out to have been closed by the server before it answered.
local IDEMPOTENT = {GET = true, HEAD = true, OPTIONS = true, TRACE = true, PUT = true, DELETE = true}
local REDIRECT = {[301] = true, [302] = true, [303] = true, [307] = true, [308] = true}
local BODY_METHOD = {POST = true, PUT = true, PATCH = true}
local FUNCTION_FIELDS = {'source', 'sink', 'step', 'create'}
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

-- The header fields of a request that gives none: shared, so never written to (see
-- drop_field).
local NO_HEADERS = {}

-- Removes a header field the caller gave; writes nothing when the field is not there.
local function drop_field(headers, name)
	if headers[name] ~= nil then headers[name] = nil end
end

-- The request's headers with lower-case names, checked: a name must be a token (RFC 9110
-- 5.1: letters, digits and !#$%&'*+-.^_`|~), a value may hold no control byte but tab
-- (so no CR or LF that could split the head).
local function lower_headers(headers, level)
	if headers == nil then return NO_HEADERS end
	local out = {}
	for name, value in pairs(headers) do
		if type(name) ~= 'string' or not name:find("^[%w!#$%%&'*+.^_`|~-]+$") then
			misuse("invalid header name '" .. tostring(name):gsub('%c', '?') .. "'", level + 1)
		end
		if type(value) == 'number' then value = tostring(value) end
		if type(value) ~= 'string' or value:find('[%z\1-\8\10-\31\127]') then
			misuse("invalid value for header '" .. name .. "'", level + 1)
		end
		out[name:lower()] = value
	end
	return out
end

-- The options tables of finished requests, filled again by the next ones rather than
-- made anew (one is most of a small request's garbage otherwise).
local spare_options, spare_count = {}, 0
local MAX_SPARE_OPTIONS = 64

local function take_options()
	if spare_count == 0 then return {} end
	local o = spare_options[spare_count]
	spare_options[spare_count] = nil
	spare_count = spare_count - 1
	return o
end

-- Keeps a finished request's options for another; what they hold is let go.
local function give_back_options(o)
	if spare_count >= MAX_SPARE_OPTIONS then return end
	o.body, o.source, o.sink, o.step, o.create, o.cookies, o.tls = nil, nil, nil, nil, nil, nil, nil
	o.conn, o.collected, o.headers = nil, nil, nil
	spare_count = spare_count + 1
	spare_options[spare_count] = o
end

-- The request table of the string form, whose URL, header fields and body come apart:
-- nothing else is set (nothing writes to it).
local NO_FIELDS = {}
local FORM_HEADERS = {['content-type'] = 'application/x-www-form-urlencoded'}

-- The request `reqt` (its url and headers given apart) checked and completed into the
-- options a request runs with (`collect`: the string form, whose body is returned).
-- Misuse raises, naming the field.
local function options(reqt, url, reqheaders, body, level, collect)
	check_field(reqt, 'url', type(url) == 'string', 'string', level + 1)
	local method = reqt.method
	check_field(reqt, 'method', method == nil or type(method) == 'string', 'string', level + 1)
	if method and not method:match('^[%w!#$%%&\'*+.^_`|~-]+$') then
		misuse("field 'method': invalid method '" .. method .. "'", level + 1)
	end
	check_field(reqt, 'headers', reqheaders == nil or type(reqheaders) == 'table', 'table', level + 1)
	for _, name in ipairs(FUNCTION_FIELDS) do
		check_field(reqt, name, reqt[name] == nil or is_callable(reqt[name]), 'function', level + 1)
	end
	check_field(reqt, 'redirect', reqt.redirect == nil or type(reqt.redirect) == 'boolean', 'boolean', level + 1)
	check_field(reqt, 'keepalive', reqt.keepalive == nil or type(reqt.keepalive) == 'boolean', 'boolean', level + 1)
	check_field(reqt, 'insecure', reqt.insecure == nil or type(reqt.insecure) == 'boolean', 'boolean', level + 1)
	check_field(reqt, 'allow_downgrade', reqt.allow_downgrade == nil or type(reqt.allow_downgrade) == 'boolean',
		'boolean', level + 1)
	check_field(reqt, 'tls', reqt.tls == nil or TLS.is_tls(reqt.tls), 'TLS parameters or context', level + 1)
	local tls
	if reqt.tls ~= nil then
		local err
		tls, err = TLS.context(reqt.tls, 'request', 1, 'client', level + 1)
		if not tls then misuse("field 'tls': " .. err, level + 1) end
		if tls:mode() ~= 'client' then misuse("field 'tls': a client context expected", level + 1) end
		if not tls:verifies() and not reqt.insecure then
			misuse("field 'tls': verify = 'none' needs insecure = true", level + 1)
		end
	end
	local maxredirects = reqt.maxredirects
	check_field(reqt, 'maxredirects', maxredirects == nil or maxredirects == false
		or type(maxredirects) == 'number', 'number or false', level + 1)
	local maxsize = reqt.maxsize
	check_field(reqt, 'maxsize', maxsize == nil or type(maxsize) == 'number', 'number', level + 1)
	local maxhead = reqt.maxhead
	check_field(reqt, 'maxhead', maxhead == nil or (type(maxhead) == 'number' and maxhead > 0),
		'positive number', level + 1)
	check_field(reqt, 'decompress', reqt.decompress == nil or type(reqt.decompress) == 'boolean',
		'boolean', level + 1)
	check_field(reqt, 'cookies', reqt.cookies == nil or C.is_jar(reqt.cookies), 'cookie jar', level + 1)
	check_field(reqt, 'proxy', reqt.proxy == nil or reqt.proxy == false or type(reqt.proxy) == 'string',
		'string or false', level + 1)
	check_field(reqt, 'proxytunnel', reqt.proxytunnel == nil or type(reqt.proxytunnel) == 'boolean',
		'boolean', level + 1)
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
	local headers = lower_headers(reqheaders, level + 1)
	-- Every field is set, nil ones too: `o` may be a finished request's table.
	local o = take_options()
	o.url = url
	o.method = method and method:upper() or (body and 'POST' or 'GET')
	o.headers = headers
	o.body = body
	o.source = reqt.source
	o.sink = reqt.sink or ltn12.sink.null()
	o.step = reqt.step
	o.redirect = reqt.redirect ~= false
	o.maxredirects = maxredirects == nil and http.MAXREDIRECTS or maxredirects
	o.maxsize = maxsize or http.MAXSIZE
	o.create = reqt.create
	o.poolable = reqt.create == nil and reqt.keepalive ~= false
	o.connect_timeout = connect_t
	o.timeout = read_t
	o.deadline = total_t and now() + total_t
	o.maxhead = maxhead or http.MAXHEAD
	o.decompress = reqt.decompress == true
	o.decode = reqt.decompress == true or (reqt.decompress == nil and headers['accept-encoding'] ~= nil)
	o.cookies = reqt.cookies
	o.proxy = reqt.proxy
	o.proxytunnel = reqt.proxytunnel == true
	o.tls = tls
	o.insecure = reqt.insecure == true
	o.allow_downgrade = reqt.allow_downgrade == true
	-- what the request sets as it runs: the connection in use, the body of the string form
	o.conn = nil
	o.collect = collect
	o.collected = nil
	return o
end

-- The TLS contexts https requests use when they name none: verifying against the
-- system's roots, and (insecure = true) not verifying. Made on first use.
local default_tls = {}

-- The TLS context of a request to `u` (nil for http), or nil, err.
local function tls_context(o, u)
	if u.scheme ~= 'https' then return nil end
	if o.tls then return o.tls end
	local which = o.insecure and 'insecure' or 'verify'
	local ctx = default_tls[which]
	if not ctx then
		local err
		ctx, err = loop.newtls{alpn = 'http/1.1', verify = o.insecure and 'none' or 'peer'}
		if not ctx then return nil, err end
		default_tls[which] = ctx
	end
	return ctx
end

-- Whether `host` is named by a no_proxy list: comma-separated names, each matching the
-- host and the names under it ('example.com' and '.example.com' both match
-- 'www.example.com'), a port after a name ignored; '*' matches every host.
local function no_proxy_match(host, list)
	for entry in list:gmatch('[^,%s]+') do
		if entry == '*' then return true end
		entry = entry:lower():gsub('^%.', ''):gsub(':%d+$', ''):gsub('^%[(.*)%]$', '%1')
		if host == entry or (#host > #entry and host:sub(-#entry - 1) == '.' .. entry) then
			return true
		end
	end
	return false
end

-- The proxy URL a request to `u` goes through, or nil: the request's `proxy`, else the
-- environment as curl reads it (http_proxy for http, https_proxy or HTTPS_PROXY for
-- https; no_proxy or NO_PROXY naming hosts that go direct).
local function proxy_url(o, u)
	local proxy = o.proxy
	if proxy ~= nil then return proxy or nil end
	local getenv = os.getenv
	if u.scheme == 'https' then
		proxy = getenv('https_proxy') or getenv('HTTPS_PROXY')
	else
		proxy = getenv('http_proxy')
	end
	if not proxy or proxy == '' then return nil end
	local list = getenv('no_proxy') or getenv('NO_PROXY')
	if list and no_proxy_match(u.host, list) then return nil end
	return proxy
end

-- Where one hop's connection goes and what it sends: {key=, host=, port=, target=,
-- hostheader=, proxyauth=, tunnel=}. Direct: the URL's server. Through a proxy: the
-- proxy's address, with the absolute URL as the request target, or (https, or
-- proxytunnel) a tunnel opened with CONNECT to `tunnel` ('host:port').
local function route_via(o, u)
	local proxy = proxy_url(o, u)
	if not proxy then
		-- An http URL's direct route is made once (`u` comes from the URL cache); an https
		-- one is made each time, route_for adding its TLS context.
		local route = u.direct_route
		if not route then
			local plain = u.scheme == 'http'
			route = {key = u.scheme .. '://' .. u.host .. ':' .. u.port, host = u.host, port = u.port,
				target = U.target(u), hostheader = U.hostheader(u), heads = plain and {} or nil}
			if plain then u.direct_route = route end
		end
		return route
	end
	local hostheader = U.hostheader(u)
	if not proxy:find('://', 1, true) then proxy = 'http://' .. proxy end
	local p, err = U.parse(proxy)
	if not p then return nil, 'proxy: ' .. err end
	if p.scheme ~= 'http' then return nil, "proxy: unsupported scheme '" .. p.scheme .. "'" end
	-- A proxy URL without a port means 1080, as curl takes it.
	if not p.authority:match(':%d+$') then p.port = 1080 end
	local via = p.host .. ':' .. p.port
	local proxyauth = U.credentials(p)
	if u.scheme == 'https' or o.proxytunnel then
		local authority = (u.host:find(':', 1, true) and '[' .. u.host .. ']' or u.host) .. ':' .. u.port
		return {key = 'tunnel ' .. via .. ' ' .. (proxyauth or '') .. ' ' .. authority,
			host = p.host, port = p.port, target = U.target(u), hostheader = hostheader,
			proxyauth = proxyauth, tunnel = authority}
	end
	return {key = 'proxy ' .. via .. ' ' .. (proxyauth or ''), host = p.host, port = p.port,
		target = U.absolute_url(u), hostheader = hostheader, proxyauth = proxyauth}
end

-- route_via's route, with (https) the TLS context and the name it checks: TLS runs to
-- the server itself, through the tunnel if there is one. Connections are shared only
-- by requests with the same TLS context (a parameter table gets one, see socketloop.tls).
local function route_for(o, u)
	local route, err = route_via(o, u)
	if not route then return nil, err end
	if u.scheme == 'https' then
		route.tls, err = tls_context(o, u)
		if not route.tls then return nil, err end
		-- The context's own server_name, if it has one, is the name checked.
		route.server_name = not route.tls:server_name() and u.host or nil
		route.key = route.key .. '#' .. route.tls:id()
	end
	return route
end

-- Asks the proxy on a new connection to open a tunnel to route.tunnel (CONNECT).
-- Returns true, or nil, err.
local function open_tunnel(o, c, route)
	local head = {'CONNECT ', route.tunnel, ' HTTP/1.1\r\nHost: ', route.tunnel,
		'\r\nUser-Agent: ', http.USERAGENT, '\r\n'}
	if route.proxyauth then
		head[#head + 1] = 'Proxy-Authorization: ' .. route.proxyauth .. '\r\n'
	end
	head[#head + 1] = '\r\n'
	local ok, err = W.send(c, table.concat(head))
	if not ok then return nil, err end
	local code, reason = W.read_response(c, o.maxhead)
	if not code then return nil, 'proxy: ' .. tostring(reason) end
	if code < 200 or code > 299 then
		return nil, ('proxy refused the tunnel to %s: %d %s'):format(route.tunnel, code, reason)
	end
	return true
end

-- The socket for a request: an idle kept-alive one, or a new connection (made by the
-- request's `create` when it has one), through a proxy tunnel when the route has one.
-- Returns the connection table or nil, err.
local function open(o, route, fresh, retryable)
	local key = route.key
	if o.poolable and not fresh then
		local c = P.take(key, http.IDLETIMEOUT, retryable)
		if c then
			-- The socket's timeouts are set again only when they are not this request's.
			if c.timeout ~= o.timeout or c.armed then
				c.sock:settimeout(o.timeout)
				c.sock:settimeout(nil, 't')
				c.timeout, c.armed = o.timeout, false
			end
			c.deadline, c.reused = o.deadline, true
			return c
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
	ok, err = sock:connect(route.host, route.port)
	if not ok then
		sock:close()
		return nil, err
	end
	sock:settimeout(o.timeout)
	-- `timeout`: the socket's block timeout; `armed`: a total timeout set (by wire.arm)
	local c = {sock = sock, deadline = o.deadline, key = key, reused = false,
		timeout = o.timeout, armed = false, pending = nil, since = nil,
		-- an asocket over a socket of ours can say what it has buffered
		foreign = o.create ~= nil and not (A.is_asocket(sock) and sock[A.OURS])}
	if route.tunnel then
		ok, err = open_tunnel(o, c, route)
		if not ok then
			sock:close()
			return nil, err
		end
	end
	if route.tls then
		if not (A.is_asocket(sock) and sock[A.OURS]) then
			sock:close()
			return nil, 'https needs a socketloop socket (create= returned another kind)'
		end
		sock:settimeout(limit)
		ok, err = sock:starttls(route.tls, route.server_name)
		if not ok then
			sock:close()
			return nil, err
		end
		sock:settimeout(o.timeout)
	end
	return c
end

-- Hands a connection back to the pool when it can carry another request, or closes it
-- (also when the server sent bytes past the response: they answer nothing we asked).
local function release(o, c, reusable)
	o.conn = nil
	if reusable and o.poolable and not c.pending then
		P.put(c.key, c, http.MAXIDLE, http.IDLETIMEOUT)
	else
		c.sock:close()
	end
end

-- The header fields sent for one hop to `u`: ours, then the caller's over them, then the
-- jar's cookies added to the caller's.
local function request_headers(o, u, route, method, body, source)
	local h = {host = route.hostheader, ['user-agent'] = http.USERAGENT}
	h.authorization = U.credentials(u)
	if o.decompress then h['accept-encoding'] = 'gzip, deflate' end
	if route.proxyauth and not route.tunnel then h['proxy-authorization'] = route.proxyauth end
	for name, value in pairs(o.headers) do h[name] = value end
	if o.cookies then
		local jar = o.cookies:header(u)
		if jar then h.cookie = h.cookie and h.cookie .. '; ' .. jar or jar end
	end
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
-- Returns the connection, code, headers, status line, minor version, repeated fields;
-- or nil, err.
local function exchange(o, u, method, body, source)
	local route, rerr = route_for(o, u)
	if not route then return nil, rerr end
	local head, chunked
	-- A request with nothing of its own (no fields, body, cookies) to a direct route
	-- sends the same head every time: it is made once per route and method.
	local plain = route.heads and not body and not source and not o.cookies and not o.decompress
		and o.poolable and next(o.headers) == nil and not BODY_METHOD[method]
	if plain then
		local cached = route.heads[method]
		if cached and cached[1] == http.USERAGENT then
			head = cached[2]
		else
			head = W.request_head(method, route.target, request_headers(o, u, route, method))
			route.heads[method] = {http.USERAGENT, head}
		end
	else
		local h = request_headers(o, u, route, method, body, source)
		head = W.request_head(method, route.target, h)
		chunked = source and W.has_token(h['transfer-encoding'], 'chunked')
	end
	local retry = source == nil and IDEMPOTENT[method]
	for attempt = 1, 2 do
		local c, err = open(o, route, attempt > 1, retry)
		if not c then return nil, err end
		o.conn = c
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
			local code, reason, headers, minor, status, repeated = W.read_response(c, o.maxhead)
			if code then return c, code, headers, status, minor, repeated end
			err, started = reason, headers
		end
		release(o, c, false)
		if not (retry and c.reused and not started) then return nil, err end
	end
end

-- Parsed URLs by their text, shared by every request, so a URL fetched again is not
-- parsed again (once made, they only gain what is made from them: `direct_route`,
-- `text`). Emptied when it reaches URL_CACHE_SIZE.
local URL_CACHE_SIZE = 1000
local url_cache, url_cache_count = {}, 0

local function parse_url(url)
	local u = url_cache[url]
	if u then return u end
	local err
	u, err = U.parse(url)
	if not u then return nil, err end
	if url_cache_count >= URL_CACHE_SIZE then
		url_cache, url_cache_count = {}, 0
	end
	url_cache[url], url_cache_count = u, url_cache_count + 1
	return u
end

-- A parsed URL's text as requests send it, made once per URL the cache shares.
local function url_text(u)
	local text = u.text
	if not text then
		text = U.absolute_url(u)
		u.text = text
	end
	return text
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
local function skip_body(o, c, code, kind, length, headers, minor)
	if kind == 'close' then
		return release(o, c, false)
	end
	local src, state = W.body_source(c, kind, length, headers, REDIRECT_BODY_LIMIT)
	local ok = ltn12.pump.all(src, ltn12.sink.null())
	release(o, c, ok and state.done and W.reusable(code, minor, headers, kind))
end

-- One request, following redirects. `o.conn` is the connection in use, for the
-- caller to close should a source or sink raise an error. Returns 1, code, headers,
-- status, final URL, redirects followed; or nil, err.
local function run(o)
	local u, err = parse_url(o.url)
	if not u then return nil, err end
	local method, body, source = o.method, o.body, o.source
	local nredirects, location = 0, nil
	while true do
		if u.scheme ~= 'http' and u.scheme ~= 'https' then
			return nil, "unsupported scheme '" .. u.scheme .. "'"
		end
		local c, code, headers, status, minor, repeated = exchange(o, u, method, body, source)
		if not c then return nil, code end
		if repeated then repeated_fields[headers] = repeated end
		if o.cookies and headers['set-cookie'] then
			o.cookies:store(u, repeated and repeated['set-cookie'] or headers['set-cookie'])
		end
		local kind, length = W.framing(method, code, headers)
		if not kind then
			release(o, c, false)
			return nil, length
		end
		local target = o.redirect and REDIRECT[code] and headers.location
		local newmethod, keepbody
		if target and target:match('%S') then
			newmethod, keepbody = redirect_method(code, method, body, source)
		end
		local nu
		if newmethod then
			nu, err = parse_url(U.absolute(u, target))
			if nu and nu.scheme ~= 'http' and nu.scheme ~= 'https' then
				newmethod = nil -- as LuaSocket: a redirect elsewhere is the answer
			end
		end
		if not newmethod then
			if o.collect and kind == 'length' and length <= W.BLOCK
					and not (o.decode and headers['content-encoding']) then
				-- the string form, a body of one block: one receive, no source or sink
				local data, berr = W.read_length(c, length, o.maxsize)
				release(o, c, data and W.reusable(code, minor, headers, kind))
				if not data then return nil, berr end
				o.collected = data
			else
				local sink, parts = o.sink, nil
				if o.collect then sink, parts = ltn12.sink.table() end
				local src, state = W.body_source(c, kind, length, headers, o.maxsize, o.decode)
				local ok, perr = ltn12.pump.all(src, sink, o.step)
				release(o, c, ok and state.done and W.reusable(code, minor, headers, kind))
				if not ok then return nil, perr end
				if parts then o.collected = table.concat(parts) end
			end
			if location then headers.location = headers.location or location end
			return 1, code, headers, status, url_text(u), nredirects
		end
		skip_body(o, c, code, kind, length, headers, minor)
		if not nu then return nil, err end
		if u.scheme == 'https' and nu.scheme == 'http' and not o.allow_downgrade then
			return nil, 'redirect from https to http refused (allow_downgrade = true allows it): ' .. o.url
		end
		nredirects = nredirects + 1
		if o.maxredirects and nredirects > o.maxredirects then
			return nil, 'too many redirects'
		end
		if nu.host ~= u.host or nu.port ~= u.port then
			-- Credentials given for one server are not handed to another.
			drop_field(o.headers, 'authorization')
			drop_field(o.headers, 'cookie')
		end
		if not keepbody then
			body, source = nil, nil
			drop_field(o.headers, 'content-length')
			drop_field(o.headers, 'content-type')
			drop_field(o.headers, 'transfer-encoding')
		end
		method, u, location = newmethod, nu, target
	end
end

-- Runs a request; if a source, sink or create function raises, the connection in use
-- is closed and the error goes on to the caller.
-- With `collect` (the string form), the body is returned in place of the 1.
local function perform(o)
	local ok, a, b, c, d, e, f = pcall(run, o)
	if not ok then
		if o.conn then o.conn.sock:close() end
		give_back_options(o)
		error(a, 0)
	end
	if o.collect and a then a = o.collected end
	give_back_options(o)
	return a, b, c, d, e, f
end

function http.request(reqt, body)
	if type(reqt) == 'string' then
		if body ~= nil and type(body) ~= 'string' then
			error("bad argument #2 to 'request' (string expected, got " .. type(body) .. ')', 2)
		end
		return perform(options(NO_FIELDS, reqt, body and FORM_HEADERS, body, 3, true))
	elseif type(reqt) == 'table' then
		return perform(options(reqt, reqt.url, reqt.headers, nil, 3, false))
	end
	error("bad argument #1 to 'request' (string or table expected, got " .. type(reqt) .. ')', 2)
end

-- Every value of header field `name` in a response's `headers`, unjoined, as a list
-- (empty when the field is not there): Set-Cookie values hold commas, so the joined
-- form cannot be split again.
function http.values(headers, name)
	if type(headers) ~= 'table' then
		error("bad argument #1 to 'values' (table expected, got " .. type(headers) .. ')', 2)
	end
	if type(name) ~= 'string' then
		error("bad argument #2 to 'values' (string expected, got " .. type(name) .. ')', 2)
	end
	name = name:lower()
	local lists = repeated_fields[headers]
	local list = lists and lists[name]
	if list then return {unpack(list)} end
	local value = headers[name]
	return value and {value} or {}
end

-- A new empty cookie jar, for `cookies = jar`.
function http.cookiejar()
	return C.new()
end

-- Closes every idle kept-alive connection (they are closed when collected otherwise).
function http.closeidle()
	P.closeall()
end

-- How many kept-alive connections are idle, in all and (given a host and port) to that
-- server, over `scheme` ('http' by default, or 'https').
function http.idlecount(host, port, scheme)
	scheme = scheme or 'http'
	local default = scheme == 'https' and 443 or 80
	return P.stats(host and (scheme .. '://' .. host:lower() .. ':' .. tostring(port or default)))
end

return http
