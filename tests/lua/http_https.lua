-- socketloop.http over TLS: https URLs against a TLS server of ours (certificates made
-- here with openssl), the CA given by tls.cafile and by SSL_CERT_FILE (examples/fetch.lua
-- in a child process), verification failures, insecure, the pool keyed by TLS
-- parameters, and redirects from https to http.
local loop = require'socketloop'
local http = require'socketloop.http'
local T = require'testlib'
local N = require'testnet'
local H = require'http_support'
local C = require'tls_support'

local f = C.make()
local server_tls = {certificate = f.server, key = f.server_key}

-- A TLS server of ours answering every request on a connection with its path; returns
-- the server, its connection count and its base URL.
local function https_server(params, answer)
	local counts = {connections = 0}
	local srv = assert(loop.newserver('127.0.0.1', 0, function(c)
		counts.connections = counts.connections + 1
		c:settimeout(10)
		while true do
			local line = H.read_request(c)
			if not line then break end
			local path = line:match('^%S+ (%S+)')
			c:send(answer and answer(path) or H.response(200, 'you asked for ' .. path))
		end
		c:close()
	end, {tls = params or server_tls}))
	local _, port = srv:getsockname()
	return srv, counts, 'https://localhost:' .. port
end

T.run('https with tls.cafile, kept alive', function()
	local srv, counts, base = https_server()
	local tls = {cafile = f.ca}
	for i = 1, 3 do
		local body, code = http.request{url = base .. '/n' .. i, tls = tls, sink = nil}
		T.eq(code, 200, 'code')
	end
	local body, code = http.request{url = base .. '/x', tls = tls}
	local out = {}
	local ok, code2 = http.request{url = base .. '/sink', tls = tls, sink = require'socketloop.ltn12'.sink.table(out)}
	T.eq(ok, 1, 'ok')
	T.eq(code2, 200, 'code')
	T.eq(table.concat(out), 'you asked for /sink', 'body')
	T.eq(counts.connections, 1, 'one connection for every request with the same parameters')
	-- other parameters: another connection
	local ctx = loop.newtls{cafile = f.ca, alpn = 'http/1.1'}
	out = {}
	http.request{url = base .. '/other', tls = ctx, sink = require'socketloop.ltn12'.sink.table(out)}
	T.eq(table.concat(out), 'you asked for /other', 'body with a context')
	T.eq(counts.connections, 2, 'the pool is keyed by the TLS parameters')
	http.closeidle()
	srv:close()
end)

T.run('verification', function()
	local srv, _, base = https_server({certificate = f.unknown, key = f.unknown_key})
	local body, err = http.request{url = base .. '/', tls = {cafile = f.ca}}
	T.eq(body, nil, 'refused')
	T.eq(err, 'certificate verify failed: unknown issuer', 'in words')
	T.raises("insecure", http.request, {url = base .. '/', tls = {cafile = f.ca, verify = 'none'}})
	local ok, code = http.request{url = base .. '/', insecure = true, sink = nil}
	T.eq(code, 200, 'insecure = true turns verification off')
	http.closeidle()
	srv:close()
	srv, _, base = https_server()
	body, err = http.request{url = base .. '/', tls = {cafile = f.ca, server_name = 'wrong.example'}}
	T.eq(body, nil, 'wrong host refused')
	T.eq(err, 'certificate verify failed: certificate is not valid for name "wrong.example"', 'in words')
	http.closeidle()
	srv:close()
end)

T.run('redirects from https to http', function()
	local plain = assert(loop.newserver('127.0.0.1', 0, function(c)
		c:settimeout(10)
		H.read_request(c)
		c:send(H.response(200, 'plain', 'Connection: close\r\n'))
		c:close()
	end))
	local _, pport = plain:getsockname()
	local srv, _, base = https_server(nil, function(path)
		return H.response(302, '', ('Location: http://127.0.0.1:%d/plain\r\n'):format(pport))
	end)
	local body, err = http.request{url = base .. '/r', tls = {cafile = f.ca}}
	T.eq(body, nil, 'refused')
	T.ok(err and err:find('allow_downgrade', 1, true), tostring(err))
	local out = {}
	local ok, code = http.request{url = base .. '/r', tls = {cafile = f.ca}, allow_downgrade = true,
		sink = require'socketloop.ltn12'.sink.table(out)}
	T.eq(code, 200, 'followed with allow_downgrade')
	T.eq(table.concat(out), 'plain', 'the plain body')
	http.closeidle()
	srv:close()
	plain:close()
end)

T.run('examples/fetch.lua over https with SSL_CERT_FILE', function()
	local srv, _, base = https_server()
	local out = f.dir .. '/fetch.out'
	local function fetch(cafile, urls, file)
		return H.spawn('sh -c ' .. H.quote(('SSL_CERT_FILE=%s %s examples/fetch.lua %s > %s 2>&1; echo "exit $?" >> %s')
			:format(H.quote(cafile), H.interpreter(), urls, H.quote(file), H.quote(file))))
	end
	local p = fetch(f.ca, base .. '/a ' .. base .. '/b', out)
	N.await(function() return C.read_if(out):find('exit %d') end, 'fetch.lua to finish')
	local text = C.read_if(out)
	T.ok(text:find('exit 0', 1, true), 'fetch.lua succeeded: ' .. text)
	T.ok(text:find('200 .* ' .. base:gsub('%p', '%%%0') .. '/a'), 'first URL: ' .. text)
	H.stop(p)
	-- without the CA, the same fetch fails in words
	out = f.dir .. '/fetch2.out'
	p = fetch(f.other_ca, base .. '/a', out)
	N.await(function() return C.read_if(out):find('exit %d') end, 'fetch.lua to finish')
	text = C.read_if(out)
	T.ok(text:find('unknown issuer', 1, true), 'an unknown issuer: ' .. text)
	H.stop(p)
	srv:close()
end)

T.run('examples/http_server.lua over TLS', function()
	local log = f.dir .. '/server.out'
	local p = H.spawn('sh -c ' .. H.quote(('%s examples/http_server.lua 127.0.0.1 0 %s %s > %s 2>&1')
		:format(H.interpreter(), H.quote(f.server), H.quote(f.server_key), H.quote(log))))
	N.await(function() return C.read_if(log):find('listening on https://', 1, true) end, 'the server to listen')
	local port = C.read_if(log):match('https://127%.0%.0%.1:(%d+)/')
	local out = {}
	local _, code = http.request{url = 'https://localhost:' .. port .. '/bytes/10', tls = {cafile = f.ca},
		sink = require'socketloop.ltn12'.sink.table(out)}
	T.eq(code, 200, 'code')
	T.eq(table.concat(out), '0123456789', 'body over https from the example server')
	http.closeidle()
	H.stop(p)
end)

C.cleanup(f)
N.finish()
