-- TLS on the loop: our client against `openssl s_server` and against our server,
-- `openssl s_client` and curl against our server, verification failures in words,
-- protocol versions, ALPN, client certificates, stalled handshakes, the decrypted
-- stream's methods, and bad input a server must survive. Certificates are made here
-- with openssl (tests/lua/lib/tls_support.lua).
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local H = require'http_support'
local C = require'tls_support'

local f = C.make()
local server_params = {certificate = f.server, key = f.server_key}
local client_params = {cafile = f.ca}

-- A TLS server of ours answering lines reversed; returns it and its port.
local function reverse_server(params, options)
	options = options or {}
	options.tls = params
	local srv = assert(loop.newserver('127.0.0.1', 0, function(c)
		c:settimeout(10)
		N.answer_lines(c, string.reverse)
	end, options))
	local _, port = srv:getsockname()
	return srv, port
end

local function background(cmd)
	return C.background(f.dir, cmd)
end

T.run('our client against openssl s_server', function()
	local p, port = C.s_server(('-cert %s -key %s'):format(f.server, f.server_key))
	local s = assert(loop.connect('127.0.0.1', port, {tls = client_params, timeout = 10}))
	T.eq(s:send('hello there\n'), 12, 'send')
	T.eq(s:receive('*l'), 'ereht olleh', 'the reversed line')
	local info = s:tlsinfo()
	T.eq(info.protocol, 'TLSv1.3', 'protocol')
	T.ok(info.cipher:find('^TLS13_'), 'cipher ' .. tostring(info.cipher))
	T.eq(info.server_name, '127.0.0.1', 'the name checked')
	T.eq(info.peer_certificate.subject, 'CN=localhost', 'subject')
	T.eq(info.peer_certificate.issuer, 'CN=socketloop test CA', 'issuer')
	T.ok(info.peer_certificate.not_after_time > os.time(), 'not_after_time')
	T.eq(table.concat(info.peer_certificate.sans, ','), 'localhost,127.0.0.1,::1', 'sans')
	local received, sent = s:getstats()
	T.eq(received, 12, 'getstats counts decrypted bytes received')
	T.eq(sent, 12, 'getstats counts decrypted bytes sent')
	s:close()
	H.stop(p)
end)

T.run('verification failures in words', function()
	local function try(cert, key, params)
		local p, port = C.s_server(('-cert %s -key %s'):format(cert, key))
		local s, err = loop.connect('127.0.0.1', port, {tls = params, timeout = 10})
		H.stop(p)
		T.eq(s, nil, 'refused')
		return err
	end
	T.eq(try(f.unknown, f.unknown_key, client_params), 'certificate verify failed: unknown issuer')
	T.eq(try(f.expired, f.expired_key, client_params), 'certificate verify failed: certificate expired')
	T.eq(try(f.server, f.server_key, {cafile = f.ca, server_name = 'wrong.example'}),
		'certificate verify failed: certificate is not valid for name "wrong.example"')
	-- a name given to starttls wins over the host
	local p, port = C.s_server(('-cert %s -key %s'):format(f.server, f.server_key))
	local s = assert(loop.connect('127.0.0.1', port))
	s:settimeout(10)
	local ok, err = s:starttls(client_params, 'other.example')
	T.eq(ok, nil, 'starttls refused')
	T.eq(err, 'certificate verify failed: certificate is not valid for name "other.example"')
	s:close()
	H.stop(p)
	-- with verify = 'none', the same unknown issuer is accepted
	p, port = C.s_server(('-cert %s -key %s'):format(f.unknown, f.unknown_key))
	s = assert(loop.connect('127.0.0.1', port, {tls = {verify = 'none'}, timeout = 10}))
	T.ok(N.exchange(s, 'abc', 'cba'), 'verify none talks')
	s:close()
	H.stop(p)
end)

T.run('TLS 1.2-only and 1.3-only peers', function()
	local p, port = C.s_server(('-cert %s -key %s -tls1_2'):format(f.server, f.server_key))
	local s = assert(loop.connect('127.0.0.1', port, {tls = client_params, timeout = 10}))
	T.eq(s:tlsinfo().protocol, 'TLSv1.2', 'TLS 1.2 with a 1.2-only server')
	T.ok(N.exchange(s, 'twelve', 'evlewt'), 'TLS 1.2 round trip')
	s:close()
	local _, err = loop.connect('127.0.0.1', port, {tls = {cafile = f.ca, protocol = 'tlsv1_3'}, timeout = 10})
	T.ok(err and err:find('protocol version', 1, true), '1.3-only client against a 1.2-only server: ' .. tostring(err))
	H.stop(p)
	p, port = C.s_server(('-cert %s -key %s -tls1_3'):format(f.server, f.server_key))
	s = assert(loop.connect('127.0.0.1', port, {tls = {cafile = f.ca, protocol = 'tlsv1_3'}, timeout = 10}))
	T.eq(s:tlsinfo().protocol, 'TLSv1.3', 'TLS 1.3 only')
	s:close()
	_, err = loop.connect('127.0.0.1', port, {tls = {cafile = f.ca, protocol = 'tlsv1_2'}, timeout = 10})
	T.ok(err ~= nil, '1.2-only client against a 1.3-only server: ' .. tostring(err))
	H.stop(p)
	-- our 1.2-only server
	local srv, sport = reverse_server({certificate = f.server, key = f.server_key, protocol = 'tlsv1_2'})
	s = assert(loop.connect('127.0.0.1', sport, {tls = client_params, timeout = 10}))
	T.eq(s:tlsinfo().protocol, 'TLSv1.2', 'our 1.2-only server')
	T.ok(N.exchange(s, 'ours', 'sruo'), 'round trip')
	s:close()
	srv:close()
end)

T.run('ALPN', function()
	local p, port = C.s_server(('-cert %s -key %s -alpn h2,http/1.1'):format(f.server, f.server_key))
	local s = assert(loop.connect('127.0.0.1', port, {tls = {cafile = f.ca, alpn = {'http/1.1'}}, timeout = 10}))
	T.eq(s:tlsinfo().alpn, 'http/1.1', 'openssl chose what we offered')
	s:close()
	H.stop(p)
	local srv, sport = reverse_server({certificate = f.server, key = f.server_key, alpn = {'b', 'a'}})
	s = assert(loop.connect('127.0.0.1', sport, {tls = {cafile = f.ca, alpn = 'a'}, timeout = 10}))
	T.eq(s:tlsinfo().alpn, 'a', 'our server chose the one we share')
	s:close()
	srv:close()
end)

T.run('our client against our server: the decrypted stream', function()
	local got = {}
	local srv = assert(loop.newserver('127.0.0.1', 0, function(c)
		c:settimeout(10)
		got.info = c:tlsinfo()
		got.line = c:receive('*l')
		got.count = c:receive(5)
		got.prefixed = c:receive(8, 'ab')
		got.dirty = c:dirty()
		got.buffered = c:buffered()
		got.all = c:receive('*a')
		assert(c:send(('x'):rep(1000000)))
		c:close()
	end, {tls = server_params}))
	local _, port = srv:getsockname()
	local s = assert(loop.connect('localhost', port, {tls = client_params, timeout = 10}))
	T.eq(s:tlsinfo().server_name, 'localhost', 'the host is the default name')
	T.eq(s:send('--line\r\n12345abcdefghTAIL--', 3, -3), 25, 'send(data, i, j)')
	local big = ('0123456789'):rep(100000)
	T.eq(s:send(big), #big, 'a big send')
	s:shutdown('send')
	local all = s:receive('*a')
	T.eq(#all, 1000000, 'a big receive')
	local data, err = s:receive(1)
	T.eq(err, 'closed', 'after close_notify')
	T.eq(data, nil)
	s:close()
	T.eq(got.line, 'line', 'line')
	T.eq(got.count, '12345', 'count')
	T.eq(got.prefixed, 'ababcdef', 'count with prefix')
	T.eq(got.all, 'ghTAIL' .. big, '*a')
	T.eq(got.info.server_name, 'localhost', 'the server saw the SNI')
	T.eq(got.info.peer_certificate, nil, 'no client certificate')
	T.eq(srv.tlsstats().handshakes, 1, 'one handshake')
	srv:close()
end)

T.run('a peer that closes without close_notify gives closed', function()
	local srv, port = reverse_server(server_params)
	local plain = assert(loop.connect('127.0.0.1', port))
	local s = assert(loop.wrap(plain))
	s:settimeout(10)
	assert(s:starttls(client_params))
	T.ok(N.exchange(s, 'x1', '1x'), 'talks')
	srv:close()
	s:close()
	-- a killed openssl s_server: its kernel closes the connection, with no close_notify
	local p, sport = C.s_server(('-cert %s -key %s'):format(f.server, f.server_key))
	s = assert(loop.connect('127.0.0.1', sport, {tls = client_params, timeout = 10}))
	T.ok(N.exchange(s, 'bye', 'eyb'), 'talks')
	H.stop(p)
	local _, err = s:receive('*l')
	T.eq(err, 'closed', 'closed')
	s:close()
end)

T.run('client certificates', function()
	local srv, port = reverse_server({certificate = f.server, key = f.server_key, verify = 'peer', cafile = f.ca})
	local s = assert(loop.connect('127.0.0.1', port, {tls = {cafile = f.ca, certificate = f.client,
		key = f.client_key}, timeout = 10}))
	T.ok(N.exchange(s, 'with cert', 'trec htiw'), 'a client with a certificate is served')
	s:close()
	-- In TLS 1.3 the client finishes first; the refusal arrives with the next read.
	local function refused(params)
		local c, err = loop.connect('127.0.0.1', port, {tls = params, timeout = 10})
		if c then
			_, err = c:receive('*l')
			c:close()
		end
		return err
	end
	local err = refused(client_params)
	T.ok(err and err:find('certificate required', 1, true), 'refused: ' .. tostring(err))
	-- a certificate from another CA
	err = refused({cafile = f.ca, certificate = f.unknown, key = f.unknown_key})
	T.ok(err and err:find('handshake refused by peer', 1, true), 'refused: ' .. tostring(err))
	N.await(function() return srv.tlsstats().failed == 2 end, 'two failed handshakes')
	T.eq(srv.tlsstats().handshakes, 1, 'one accepted')
	srv:close()
end)

T.run('stalled handshakes time out', function()
	local srv, port = reverse_server(server_params, {handshake_timeout = 0.2})
	local raw = assert(loop.connect('127.0.0.1', port))
	raw:settimeout(5)
	local data, err = raw:receive('*a')
	T.ok(data == '' or err == 'closed', 'the server closed a client that said nothing: ' .. tostring(err))
	raw:close()
	T.eq(srv.tlsstats().failed, 1, 'counted')
	T.eq(srv.tlsstats().last_error, 'timeout', 'as a timeout')
	srv:close()
	-- our client against a server that never answers
	local mute = assert(loop.tcp('127.0.0.1', 0))
	assert(mute:listen())
	local _, mport = mute:getsockname()
	local s, e = loop.connect('127.0.0.1', mport, {tls = client_params, timeout = 0.2})
	T.eq(s, nil, 'no connection')
	T.eq(e, 'timeout', 'a stalled handshake times out')
	mute:close()
end)

T.run('openssl s_client and curl against our server', function()
	local srv, port = reverse_server(server_params)
	local out, p = background(('printf "from s_client\\n" | openssl s_client -connect 127.0.0.1:%d'
		.. ' -CAfile %s -verify_return_error -quiet'):format(port, H.quote(f.ca)))
	N.await(function() return out():find('tneilc_s morf', 1, true) end, 's_client reply')
	H.stop(p)
	srv:close()
	local web = assert(loop.newserver('127.0.0.1', 0, function(c)
		c:settimeout(10)
		H.read_request(c)
		c:send(H.response(200, 'hello curl\n', 'Connection: close\r\n'))
		c:close()
	end, {tls = server_params}))
	local _, wport = web:getsockname()
	out, p = background(('curl -sS --cacert %s https://localhost:%d/'):format(H.quote(f.ca), wport))
	N.await(function() return out():find('hello curl', 1, true) end, 'curl body')
	H.stop(p)
	web:close()
end)

T.run('bad input closes that connection only', function()
	local srv, port = reverse_server(server_params)
	local function record(ctype, body)
		return string.char(ctype, 3, 3, math.floor(#body / 256), #body % 256) .. body
	end
	-- a ClientHello with a 64 KiB server name, split into records of 16 KiB
	local name = ('a'):rep(65000)
	local sni = string.char(0, 0) .. string.char(math.floor((#name + 5) / 256), (#name + 5) % 256)
		.. string.char(math.floor((#name + 3) / 256), (#name + 3) % 256) .. '\0'
		.. string.char(math.floor(#name / 256), #name % 256) .. name
	local ext = string.char(math.floor(#sni / 256), #sni % 256) .. sni
	local body = '\3\3' .. ('r'):rep(32) .. '\0' .. '\0\2\19\1' .. '\1\0' .. ext
	local n = #body
	local hello = string.char(1, math.floor(n / 65536), math.floor(n / 256) % 256, n % 256) .. body
	local records = {}
	for i = 1, #hello, 16384 do records[#records + 1] = record(22, hello:sub(i, i + 16383)) end
	local bad = {
		garbage = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
		truncated = record(22, '\1\0\0\100\3\3'):sub(1, 8),
		huge_record = string.char(22, 3, 3, 255, 255) .. ('z'):rep(100),
		huge_handshake = record(22, '\1\255\255\255' .. ('z'):rep(100)),
		big_sni = table.concat(records),
		renegotiation = record(22, '\0\0\0\0'), -- a HelloRequest sent by a client
	}
	local count = 0
	for what, bytes in pairs(bad) do
		count = count + 1
		local data, err = N.send_raw(port, bytes, true)
		T.ok(data ~= nil or err == 'closed', what .. ': the server closed the connection: ' .. tostring(err))
	end
	N.await(function() return srv.tlsstats().failed == count end, 'every bad client counted')
	local s = assert(loop.connect('127.0.0.1', port, {tls = client_params, timeout = 10}))
	T.ok(N.exchange(s, 'still here', 'ereh llits'), 'the server goes on serving')
	s:close()
	srv:close()
	-- a TLS 1.2 client asking to renegotiate (s_client's R command)
	srv, port = reverse_server({certificate = f.server, key = f.server_key, protocol = 'tlsv1_2'})
	local out, p = background(('(printf "one\\n"; sleep 0.3; printf "R\\n"; sleep 0.3; printf "two\\n"; sleep 1)'
		.. ' | openssl s_client -connect 127.0.0.1:%d -CAfile %s'):format(port, H.quote(f.ca)))
	N.await(function() return out():find('eno', 1, true) end, 'the first line answered')
	N.await(function() return out():find('RENEGOTIATING', 1, true) end, 'the renegotiation tried')
	loop.sleep(0.5)
	H.stop(p)
	s = assert(loop.connect('127.0.0.1', port, {tls = client_params, timeout = 10}))
	T.ok(N.exchange(s, 'after', 'retfa'), 'the server goes on serving after a renegotiation attempt')
	s:close()
	srv:close()
end)

T.run('parameters', function()
	T.raises("bad argument #1 to 'newtls' (unknown TLS parameter 'verfy')", loop.newtls, {verfy = 'none'})
	T.raises("bad argument #1 to 'newtls' (field 'mode'", loop.newtls, {mode = 'both'})
	T.raises("bad argument #1 to 'newtls' (TLS parameters or context expected, got string)", loop.newtls, 'x')
	T.raises("bad argument #3 to 'connect' (unknown option 'tsl')", loop.connect, '127.0.0.1', 1, {tsl = {}})
	T.raises("bad argument #4 to 'newserver' (unknown option 'handshake')", loop.newserver, '127.0.0.1', 0,
		print, {handshake = 1})
	T.raises("bad argument #4 to 'newserver' (tls: a server context expected",
		loop.newserver, '127.0.0.1', 0, print, {tls = loop.newtls{cafile = f.ca}})
	-- LuaSec's keys without a rustls counterpart are ignored
	local ctx = loop.newtls{mode = 'client', cafile = f.ca, options = {'all'}, ciphers = 'ALL',
		depth = 3, verify = {'peer', 'fail_if_no_peer_cert'}, protocol = 'any'}
	T.eq(ctx:mode(), 'client', 'a client context')
	local none, err = loop.newtls{cafile = f.dir .. '/missing.pem'}
	T.eq(none, nil, 'an unreadable cafile')
	T.ok(err:find('missing.pem', 1, true), err)
	none, err = loop.newtls{mode = 'server', certificate = f.server}
	T.ok(err:find('key', 1, true), 'a certificate without a key: ' .. tostring(err))
	none, err = loop.newtls{protocol = 'tlsv1'}
	T.ok(err:find('not supported', 1, true), 'TLS 1.0: ' .. tostring(err))
	-- PEM strings, and a context shared by two servers
	local pem_ctx = assert(loop.newtls{mode = 'server', certificate_pem = C.read(f.server), key_pem = C.read(f.server_key)})
	local a = assert(loop.newserver('127.0.0.1', 0, function(c) N.answer_lines(c, string.upper) end, {tls = pem_ctx}))
	local _, port = a:getsockname()
	local s = assert(loop.connect('127.0.0.1', port, {tls = ctx, timeout = 10}))
	T.ok(N.exchange(s, 'pem', 'PEM'), 'a server from PEM strings')
	s:close()
	a:close()
	-- starttls twice, and on a foreign socket
	local p, sport = C.s_server(('-cert %s -key %s'):format(f.server, f.server_key))
	s = assert(loop.connect('127.0.0.1', sport, {tls = ctx, timeout = 10}))
	local ok
	ok, err = s:starttls(ctx)
	T.eq(err, 'TLS already started', 'starttls twice')
	s:close()
	H.stop(p)
	T.eq(s:tlsinfo(), nil, 'no tlsinfo once closed')
	local plain = assert(loop.tcp())
	T.eq(plain:tlsinfo(), nil, 'no tlsinfo before starttls')
	plain:close()
end)

C.cleanup(f)
N.finish()
