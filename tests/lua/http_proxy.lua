-- socketloop.http through a proxy of ours, written here on the loop: plain forwarding
-- (absolute-form requests) and CONNECT tunnels carrying http and https (to a TLS server
-- of ours, certificates made by tests/lua/lib/tls_support.lua), credentials from the
-- proxy URL as Proxy-Authorization, the http_proxy, https_proxy and no_proxy environment
-- variables, a refused tunnel; Secure cookies sent over https only.
local loop = require'socketloop'
local http = require'socketloop.http'
local ffi = require'ffi'
local T = require'testlib'
local H = require'http_support'
local TS = require'tls_support'

local certs = TS.make()

ffi.cdef[[
int setenv(const char *name, const char *value, int overwrite);
int unsetenv(const char *name);
]]

local function setenv(name, value)
	if value then ffi.C.setenv(name, value, 1) else ffi.C.unsetenv(name) end
end
for _, name in ipairs{'http_proxy', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY'} do
	setenv(name, nil)
end

-- Copies what arrives on `from` to `to` until `from` ends; then ends `to`'s sending.
local function pipe(from, to)
	while true do
		local data = from:receive(1)
		if not data then break end
		local n = from:buffered()
		if n > 0 then data = data .. from:receive(n) end
		if not to:send(data) then break end
	end
	to:shutdown('send')
end

-- The proxy. `log` gets one entry per request: {line=, auth=}. CONNECT host:port opens
-- a tunnel (refused with 407 when `require_auth` is set and no credentials came); an
-- absolute-form request is sent on to its server in origin form, one per connection.
local log = {}
local require_auth = false
local function proxy_handler(client)
	local line, fields = H.read_request(client)
	if not line then return client:close() end
	log[#log + 1] = {line = line, auth = fields['proxy-authorization']}
	local method, target = line:match('^(%u+) (%S+) HTTP/1%.1$')
	local host, port, path
	if method == 'CONNECT' then
		host, port = target:match('^([%w.]+):(%d+)$')
	else
		host, port, path = target:match('^http://([%w.]+):(%d+)(/.*)$')
	end
	if require_auth and not fields['proxy-authorization'] then
		client:send('HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n')
		return client:close()
	end
	local upstream = loop.tcp()
	if not (host and upstream:connect(host, tonumber(port))) then
		client:send('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
		upstream:close()
		return client:close()
	end
	if method == 'CONNECT' then
		client:send('HTTP/1.1 200 Connection established\r\n\r\n')
	else
		local head = {method .. ' ' .. path .. ' HTTP/1.1'}
		for name, value in pairs(fields) do
			if name ~= 'proxy-authorization' and name ~= 'connection' then
				head[#head + 1] = name .. ': ' .. value
			end
		end
		head[#head + 1] = 'connection: close\r\n\r\n'
		upstream:send(table.concat(head, '\r\n'))
		-- one request per connection: the response (a Content-Length one) says so
		local status, rfields = H.read_request(upstream)
		local rhead = {status, 'Connection: close'}
		for name, value in pairs(rfields or {}) do rhead[#rhead + 1] = name .. ': ' .. value end
		rhead[#rhead + 1] = '\r\n'
		local length = tonumber(rfields and rfields['content-length'] or 0)
		client:send(table.concat(rhead, '\r\n') .. (length > 0 and upstream:receive(length) or ''))
		upstream:close()
		return client:close()
	end
	local done = false
	loop.newthread(function()
		pipe(upstream, client)
		done = true
	end)
	pipe(client, upstream)
	while not done do loop.sleep(0.01) end
	upstream:close()
	client:close()
end

-- The origin server: answers every request with its request line and Host field.
local function origin_handler(skt)
	for _ = 1, 100 do
		local line, fields = H.read_request(skt)
		if not line then break end
		skt:send(H.response(200, line .. ' host=' .. tostring(fields.host)))
	end
	skt:close()
end

T.run('through the proxy', function()
	local proxy, _, proxy_url = H.scripted(proxy_handler)
	local origin, _, base = H.scripted(origin_handler)
	local origin_host = base:match('^http://(.*)$')
	local _, proxy_port = proxy:getsockname()

	-- plain forwarding
	local out = {}
	local ok, code = http.request{url = base .. '/a?b=1', proxy = proxy_url,
		sink = require'socketloop.ltn12'.sink.table(out)}
	T.eq(code, 200, 'through the proxy')
	T.eq(table.concat(out), 'GET /a?b=1 HTTP/1.1 host=' .. origin_host, 'the origin got the request')
	T.eq(log[#log].line, 'GET ' .. base .. '/a?b=1 HTTP/1.1', 'the proxy got the absolute URL')
	T.eq(log[#log].auth, nil, 'no credentials')

	-- credentials in the proxy URL; scheme-less proxy URL
	log = {}
	out = {}
	ok, code = http.request{url = base .. '/c', proxy = 'http://us%65r:p%40ss@127.0.0.1:' .. proxy_port,
		sink = require'socketloop.ltn12'.sink.table(out)}
	T.eq(code, 200, 'with credentials')
	T.eq(log[1].auth, 'Basic dXNlcjpwQHNz', 'Proxy-Authorization from the URL (user:p@ss)')
	log = {}
	T.eq((http.request{url = base .. '/d', proxy = '127.0.0.1:' .. proxy_port}), 1, 'scheme-less proxy')
	T.eq(#log, 1, 'went through the proxy')

	-- a CONNECT tunnel (what https requests use), kept alive for the next request
	log = {}
	http.closeidle()
	for i = 1, 3 do
		out = {}
		ok, code = http.request{url = base .. '/t' .. i, proxy = proxy_url, proxytunnel = true,
			sink = require'socketloop.ltn12'.sink.table(out)}
		T.eq(table.concat(out), 'GET /t' .. i .. ' HTTP/1.1 host=' .. origin_host, 'tunnelled request ' .. i)
	end
	T.eq(#log, 1, 'one CONNECT for three requests')
	T.eq(log[1].line, 'CONNECT ' .. origin_host .. ' HTTP/1.1', 'CONNECT host:port')
	http.closeidle()

	-- a refused tunnel
	require_auth = true
	ok, code = http.request{url = base .. '/r', proxy = proxy_url, proxytunnel = true}
	T.eq(ok, nil, 'refused tunnel fails')
	T.eq(code, 'proxy refused the tunnel to ' .. origin_host .. ': 407 Proxy Authentication Required', 'message')
	ok, code = http.request{url = base .. '/r', proxy = 'http://u:p@127.0.0.1:' .. proxy_port, proxytunnel = true}
	T.eq(ok, 1, 'with credentials it opens')
	require_auth = false
	http.closeidle()

	-- the environment: http_proxy, no_proxy; proxy = false ignores it
	setenv('http_proxy', proxy_url)
	log = {}
	T.eq(select(2, http.request(base .. '/e1')), 200, 'http_proxy')
	T.eq(#log, 1, 'http_proxy used')
	setenv('no_proxy', 'example.com, 127.0.0.1')
	T.eq(select(2, http.request(base .. '/e2')), 200, 'no_proxy')
	T.eq(#log, 1, 'no_proxy honoured: went direct')
	setenv('no_proxy', '.example.com,localhost')
	T.eq(select(2, http.request(base .. '/e3')), 200, 'no_proxy not naming the host')
	T.eq(#log, 2, 'proxied again')
	T.eq(select(2, http.request('http://localhost:' .. base:match(':(%d+)$') .. '/e4')), 200, 'localhost')
	T.eq(#log, 2, 'localhost in no_proxy: direct')
	setenv('no_proxy', '*')
	http.request(base .. '/e5')
	T.eq(#log, 2, "no_proxy='*': direct")
	setenv('no_proxy', nil)
	http.request{url = base .. '/e6', proxy = false}
	T.eq(#log, 2, 'proxy = false: direct')
	setenv('http_proxy', 'http://127.0.0.1:' .. proxy_port)
	setenv('http_proxy', nil)

	-- https through a CONNECT tunnel: TLS runs to the server itself, inside the tunnel
	local tls_origin = assert(loop.newserver('127.0.0.1', 0, origin_handler,
		{tls = {certificate = certs.server, key = certs.server_key}}))
	local tls_port = select(2, tls_origin:getsockname())
	local https_base = 'https://localhost:' .. tls_port
	local tls = {cafile = certs.ca}
	log = {}
	for i = 1, 2 do
		out = {}
		ok, code = http.request{url = https_base .. '/s' .. i, proxy = proxy_url, tls = tls,
			sink = require'socketloop.ltn12'.sink.table(out)}
		T.eq(table.concat(out), 'GET /s' .. i .. ' HTTP/1.1 host=localhost:' .. tls_port,
			'https through the tunnel ' .. i .. ' (' .. tostring(code) .. ')')
	end
	T.eq(#log, 1, 'one CONNECT for two https requests')
	T.eq(log[1] and log[1].line, 'CONNECT localhost:' .. tls_port .. ' HTTP/1.1', 'CONNECT to the https server')
	-- https_proxy from the environment, no_proxy for it
	http.closeidle()
	setenv('https_proxy', proxy_url)
	log = {}
	T.eq(select(2, http.request{url = https_base .. '/s3', tls = tls}), 200, 'https_proxy')
	T.eq(#log, 1, 'https_proxy used')
	setenv('no_proxy', 'localhost')
	http.closeidle()
	T.eq(select(2, http.request{url = https_base .. '/s4', tls = tls}), 200, 'https, no_proxy')
	T.eq(#log, 1, 'no_proxy honoured for https')
	setenv('no_proxy', nil)
	setenv('https_proxy', nil)
	-- Secure cookies: set over https, sent over https, never over http
	local jar = http.cookiejar()
	jar:store(https_base .. '/', {'sid=1; Secure', 'plain=2'})
	out = {}
	http.request{url = https_base .. '/c', tls = tls, cookies = jar, sink = require'socketloop.ltn12'.sink.table(out)}
	T.eq(jar:header(https_base .. '/c'), 'sid=1; plain=2', 'both for https')
	T.eq(jar:header('http://localhost:' .. tls_port .. '/c'), 'plain=2', 'not the Secure one for http')
	http.closeidle()
	tls_origin:close()

	-- misuse and bad proxies
	T.raises("field 'proxy'", http.request, {url = base, proxy = 42})
	ok, code = http.request{url = base, proxy = 'socks5://127.0.0.1:1'}
	T.eq(code, "proxy: unsupported scheme 'socks5'", 'socks proxy')
	http.closeidle()
	proxy:close()
	origin:close()
end)

TS.cleanup(certs)
T.finish()
