-- socketloop.http against servers scripted here, on the loop: chunked bodies, bodies
-- delimited by close, 1xx heads, HEAD/204/304, redirects and a redirect loop, a slow
-- server, a server closing mid-body, garbage instead of a status line, size limits,
-- request bodies from sources, and misuse.
local loop = require'socketloop'
local http = require'socketloop.http'
local ltn12 = require'socketloop.ltn12'
local T = require'testlib'
local H = require'http_support'

-- Each test gets a scripted server: `routes[path](skt, line, fields)` answers a request
-- (and returns true to close the connection). The server and the kept-alive
-- connections are closed at the end of the test, so that the loop goes idle.
local routes = {}
local server, counts, base

local function run(name, body)
	T.run(name, function()
		server, counts, base = H.scripted(function(skt)
			for _ = 1, 1000 do
				local line, fields = H.read_request(skt)
				if not line then break end
				local path = line:match('^%u+ (%S+)')
				local route = routes[path:match('^[^?]*')]
				if not route then
					skt:send(H.response(404, 'no route ' .. path))
				elseif route(skt, line, fields) then
					break
				end
			end
			skt:close()
		end)
		body()
		http.closeidle()
		server:close()
	end)
end

local function get(path, t)
	t = t or {}
	local body = {}
	t.url = base .. path
	t.sink = t.sink or ltn12.sink.table(body)
	local ok, code, headers, status = http.request(t)
	return ok and table.concat(body), code, headers, status
end

run('chunked bodies and trailers', function()
	local big = ('abcdefghij'):rep(15000) -- 150,000 bytes: more than one receive block
	routes['/chunked'] = function(skt)
		skt:send('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')
		skt:send('5;name=value\r\nhello\r\n')
		skt:send('1\r\n \r\n')
		skt:send(('%x\r\n'):format(#big) .. big:sub(1, 70000))
		loop.sleep(0.01)
		skt:send(big:sub(70001) .. '\r\n')
		skt:send('0\r\nX-Trailer: yes\r\n\r\n')
	end
	local body, code, headers = get('/chunked')
	T.eq(code, 200, 'chunked code')
	T.eq(body, 'hello ' .. big, 'chunked body')
	T.eq(headers['x-trailer'], 'yes', 'trailer field merged into the headers')
	-- the connection ended exactly after the trailer: it is reused
	local before = counts.connections
	T.eq(get('/chunked'), 'hello ' .. big, 'chunked body again')
	T.eq(counts.connections, before, 'kept alive after a chunked body')
	routes['/badchunk'] = function(skt)
		skt:send('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n')
		return true
	end
	local ok, err = get('/badchunk')
	T.eq(ok, nil, 'invalid chunk size fails')
	T.ok(tostring(err):find('malformed response', 1, true), 'invalid chunk size: ' .. tostring(err))
	routes['/longchunk'] = function(skt)
		skt:send('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhelloo\r\n0\r\n\r\n')
		return true
	end
	ok, err = get('/longchunk')
	T.ok(not ok and tostring(err):find('malformed response', 1, true), 'chunk longer than its size: ' .. tostring(err))
end)

run('bodies delimited by close', function()
	routes['/close'] = function(skt)
		skt:send('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n')
		for i = 1, 5 do skt:send(('part %d\n'):format(i)) end
		return true
	end
	local body, code, headers = get('/close')
	T.eq(code, 200, 'close-delimited code')
	T.eq(body, 'part 1\npart 2\npart 3\npart 4\npart 5\n', 'close-delimited body')
	T.eq(headers['content-type'], 'text/plain', 'header')
	routes['/http10'] = function(skt)
		skt:send('HTTP/1.0 200 OK\r\n\r\nold style')
		return true
	end
	local _, _, _, status = get('/http10')
	T.eq(get('/http10'), 'old style', 'HTTP/1.0 body')
	T.eq(status, 'HTTP/1.0 200 OK', 'status line')
	routes['/empty-close'] = function(skt)
		skt:send('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n')
		return true
	end
	T.eq(get('/empty-close'), '', 'empty close-delimited body')
end)

run('1xx skipped; HEAD, 204 and 304 have no body', function()
	routes['/interim'] = function(skt)
		skt:send('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n')
		skt:send(H.response(200, 'final'))
	end
	local body, code, headers = get('/interim')
	T.eq(code, 200, '1xx skipped')
	T.eq(body, 'final', 'body after 1xx')
	T.eq(headers.link, nil, 'interim fields are not the response fields')
	routes['/nobody'] = function(skt, line)
		local method = line:match('^%u+')
		local code = ({HEAD = 200, GET = 204, PUT = 304})[method]
		-- Content-Length announced, no body sent: the client must not wait for one
		skt:send(('HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n'):format(code))
	end
	local before = counts.connections
	for _, m in ipairs{'HEAD', 'GET', 'PUT', 'HEAD'} do
		local b, c = get('/nobody', {method = m})
		T.eq(b, '', m .. ': empty body')
		T.eq(c, ({HEAD = 200, GET = 204, PUT = 304})[m], m .. ': code')
	end
	T.eq(counts.connections, before, 'HEAD, 204, 304 and HEAD again on the kept-alive connection')
	routes['/upgrade'] = function(skt)
		skt:send('HTTP/1.1 101 Switching Protocols\r\nUpgrade: other\r\n\r\nother protocol')
	end
	local b, c = get('/upgrade')
	T.eq(c, 101, '101 is a final answer')
	T.eq(b, '', '101 has no body')
	T.eq(http.idlecount(), 0, 'a 101 connection is not kept')
	get('/nobody', {method = 'HEAD'})
	T.eq(counts.connections, before + 1, 'the next request connects again')
end)

run('redirects', function()
	routes['/target'] = function(skt, line, fields)
		local method = line:match('^%u+')
		local body = ''
		if fields['content-length'] then body = skt:receive(tonumber(fields['content-length'])) end
		skt:send(H.response(200, method .. ' ' .. body))
	end
	local function redirect(code, location)
		return function(skt, line, fields)
			if fields['content-length'] then skt:receive(tonumber(fields['content-length'])) end
			skt:send(H.response(code, 'moved', 'Location: ' .. location .. '\r\n'))
		end
	end
	routes['/r301'] = redirect(301, '/target')
	routes['/r302'] = redirect(302, base .. '/target')
	routes['/r303'] = redirect(303, 'target')
	routes['/r307'] = redirect(307, '/target')
	routes['/r308'] = redirect(308, './a/../target')
	routes['/chain'] = redirect(302, '/r301')
	routes['/loop'] = redirect(302, '/loop')
	routes['/https'] = redirect(302, 'https://127.0.0.1:1/')
	for _, code in ipairs{301, 302, 303, 307, 308} do
		local body, c, headers = get('/r' .. code)
		T.eq(c, 200, code .. ' followed')
		T.eq(body, 'GET ', code .. ': body of the target')
		T.ok(headers.location, code .. ': location hint')
	end
	-- a POST: 303 (and 301/302) become GET, 307/308 send the body again
	local body, c = http.request(base .. '/r303', 'x=1')
	T.eq(body, 'GET ', '303 after POST is a GET')
	T.eq(c, 200, '303 code')
	body = http.request(base .. '/r307', 'x=1')
	T.eq(body, 'POST x=1', '307 resends the POST')
	body = http.request(base .. '/r308', 'y=2')
	T.eq(body, 'POST y=2', '308 resends the POST')
	T.eq(get('/chain'), 'GET ', 'two redirects in a row')
	local ok, err = get('/chain', {maxredirects = 1})
	T.eq(ok, nil, 'maxredirects=1 stops a chain of two')
	T.eq(err, 'too many redirects', 'maxredirects error')
	ok, err = get('/loop')
	T.eq(ok, nil, 'redirect loop fails')
	T.eq(err, 'too many redirects', 'redirect loop error')
	local b, code, headers = get('/r301', {redirect = false})
	T.eq(code, 301, 'redirect=false returns the 301')
	T.eq(b, 'moved', 'redirect=false returns its body')
	T.eq(headers.location, '/target', 'and its location')
	ok, err = get('/https')
	T.eq(ok, nil, 'a redirect to https is followed (here to a closed port)')
	T.eq(err, 'connection refused', 'the https connect error')
	-- a source cannot be sent twice: a 307 after a streamed body is returned as is
	local out = {}
	local _, c307 = http.request{url = base .. '/r307', method = 'POST', source = ltn12.source.string('zz'),
		headers = {['content-length'] = 2}, sink = ltn12.sink.table(out)}
	T.eq(c307, 307, '307 after a source is not followed')
end)

run('timeouts', function()
	routes['/silent'] = function(skt)
		skt:receive(1) -- waits for the client to give up and close
		return true
	end
	local t0 = loop.now()
	local ok, err = get('/silent', {timeout = 0.2})
	T.eq(ok, nil, 'silent server: fails')
	T.eq(err, 'timeout', 'silent server: timeout')
	T.ok(loop.now() - t0 >= 0.2, 'waited the timeout')
	routes['/drip'] = function(skt)
		skt:send('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n')
		for _ = 1, 200 do
			loop.sleep(0.02)
			if not skt:send('x') then break end
		end
		return true
	end
	t0 = loop.now()
	ok, err = get('/drip', {timeout = {read = 5, total = 0.3}})
	T.eq(ok, nil, 'dripping server: fails')
	T.eq(err, 'timeout', 'dripping server: total timeout')
	T.ok(loop.now() - t0 < 4, 'the total timeout cut the read timeout')
	-- connection refused comes back as a value
	local closed = assert(loop.tcp('127.0.0.1', 0))
	local _, port = closed:getsockname()
	closed:close()
	ok, err = http.request('http://127.0.0.1:' .. port .. '/')
	T.eq(ok, nil, 'refused: fails')
	T.eq(err, 'connection refused', 'refused: message')
end)

run('servers that misbehave', function()
	routes['/cut'] = function(skt)
		skt:send('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this')
		return true
	end
	local ok, err = get('/cut')
	T.eq(ok, nil, 'closed mid-body: fails')
	T.eq(err, 'closed (body truncated: expected 1000 bytes, received 9)', 'closed mid-body: message')
	routes['/cutchunk'] = function(skt)
		skt:send('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly')
		return true
	end
	ok, err = get('/cutchunk')
	T.eq(err, 'closed (body truncated: expected a chunk of 16 bytes, received 4 of it, 4 body bytes in all)',
		'closed mid-chunk')
	routes['/garbage'] = function(skt)
		skt:send('SSH-2.0-OpenSSH_9.2\r\nwhatever\r\n\r\n')
		return true
	end
	ok, err = get('/garbage')
	T.eq(ok, nil, 'garbage: fails')
	T.ok(tostring(err):find('malformed response', 1, true), 'garbage: ' .. tostring(err))
	routes['/garbage-open'] = function(skt)
		-- garbage, then the server keeps the connection open: no waiting for a head end
		skt:send('hello there\r\n')
		skt:receive(1)
		return true
	end
	ok, err = get('/garbage-open', {timeout = 5})
	T.ok(tostring(err):find('malformed response', 1, true), 'garbage, open: ' .. tostring(err))
	routes['/endless'] = function(skt)
		skt:send('HTTP/1.1 200 OK\r\nX-Long: ')
		local chunk = ('x'):rep(16384)
		for _ = 1, 100 do
			if not skt:send(chunk) then break end
		end
		return true
	end
	ok, err = get('/endless')
	T.ok(tostring(err):find('malformed response', 1, true), 'endless header line: ' .. tostring(err))
	routes['/badlength'] = function(skt)
		skt:send('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!')
		return true
	end
	ok, err = get('/badlength')
	T.ok(tostring(err):find('malformed response', 1, true), 'conflicting lengths: ' .. tostring(err))
	routes['/badheader'] = function(skt)
		skt:send('HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n')
		return true
	end
	ok, err = get('/badheader')
	T.ok(tostring(err):find('malformed response', 1, true), 'bad header: ' .. tostring(err))
	-- the server is still fine after all that
	T.eq(select(2, get('/interim')), 200, 'still serving')
end)

run('size limit', function()
	routes['/big'] = function(skt) skt:send(H.response(200, ('b'):rep(5000))) end
	routes['/bigchunked'] = function(skt)
		skt:send('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')
		for _ = 1, 5 do skt:send('3e8\r\n' .. ('c'):rep(1000) .. '\r\n') end
		skt:send('0\r\n\r\n')
	end
	routes['/bigclose'] = function(skt)
		skt:send('HTTP/1.1 200 OK\r\n\r\n' .. ('d'):rep(5000))
		return true
	end
	for _, path in ipairs{'/big', '/bigchunked', '/bigclose'} do
		local ok, err = get(path, {maxsize = 4000})
		T.eq(ok, nil, path .. ' over maxsize fails')
		T.eq(err, 'response body too large', path .. ' over maxsize')
		T.eq(#(get(path, {maxsize = 5000}) or ''), 5000, path .. ' at maxsize passes')
	end
end)

run('requests as sent', function()
	routes['/head'] = function(skt, line, fields)
		local body = ''
		if fields['content-length'] then body = skt:receive(tonumber(fields['content-length'])) end
		local names = {}
		for k in pairs(fields) do names[#names + 1] = k end
		table.sort(names)
		local out = {line}
		for _, k in ipairs(names) do out[#out + 1] = k .. '=' .. fields[k] end
		out[#out + 1] = 'body=' .. body
		skt:send(H.response(200, table.concat(out, '\n')))
	end
	local _, port = server:getsockname()
	local seen = http.request(base .. '/head?q=1#frag')
	T.ok(seen:find('^GET /head%?q=1 HTTP/1%.1\n'), 'request line: ' .. seen)
	T.ok(seen:find('\nhost=127.0.0.1:' .. port .. '\n', 1, true), 'Host with port')
	T.ok(seen:find('\nuser-agent=' .. http.USERAGENT .. '\n', 1, true), 'User-Agent')
	seen = http.request(base .. '/head', 'a=1&b=2')
	T.ok(seen:find('^POST /head HTTP/1%.1\n'), 'simple form with a body is a POST')
	T.ok(seen:find('\ncontent-length=7\n', 1, true), 'Content-Length of the body')
	T.ok(seen:find('\ncontent-type=application/x-www-form-urlencoded\n', 1, true), 'form content type')
	T.ok(seen:find('\nbody=a=1&b=2$'), 'body sent')
	seen = http.request('http://user:p%40ss@127.0.0.1:' .. port .. '/head')
	T.ok(seen:find('\nauthorization=Basic dXNlcjpwQHNz\n', 1, true), 'Basic credentials from the URL')
	local out = {}
	local ok = http.request{url = base .. '/head', method = 'put', sink = ltn12.sink.table(out),
		headers = {['User-Agent'] = 'mine', ['X-Num'] = 42, ['content-length'] = 3},
		source = ltn12.source.string('abc')}
	seen = table.concat(out)
	T.eq(ok, 1, 'table form returns 1')
	T.ok(seen:find('^PUT /head'), 'method upper-cased')
	T.ok(seen:find('\nuser-agent=mine\n', 1, true), 'caller headers win')
	T.ok(seen:find('\nx-num=42\n', 1, true), 'number header values')
	T.ok(seen:find('\nbody=abc$'), 'source body with a length')
	-- a source without a length goes chunked: the example server decodes it
	local example = dofile('examples/http_server.lua')
	local eserver = assert(example.start('127.0.0.1', 0))
	local _, eport = eserver:getsockname()
	local payload = ('0123456789abcdef'):rep(20000)
	out = {}
	ok = http.request{url = 'http://127.0.0.1:' .. eport .. '/echo', method = 'POST',
		source = ltn12.source.string(payload), sink = ltn12.sink.table(out)}
	T.eq(ok, 1, 'chunked upload')
	T.eq(table.concat(out), payload, 'chunked upload echoed')
	-- a custom step, as LuaSocket's
	local steps = 0
	out = {}
	http.request{url = 'http://127.0.0.1:' .. eport .. '/bytes/200000', sink = ltn12.sink.table(out),
		step = function(src, snk) steps = steps + 1 return ltn12.pump.step(src, snk) end}
	T.eq(table.concat(out), ('0123456789'):rep(20000), 'body through a custom step')
	T.ok(steps >= 4, 'the step ran for every block')
	http.closeidle()
	eserver:close()
end)

run('sinks that stop, and misuse', function()
	routes['/ten'] = function(skt) skt:send(H.response(200, ('t'):rep(10))) end
	local ok, err = http.request{url = base .. '/ten', sink = function(chunk) return nil, 'sink full' end}
	T.eq(ok, nil, 'a failing sink fails the request')
	T.eq(err, 'sink full', 'the sink error')
	T.raises('sink exploded', http.request, {url = base .. '/ten', sink = function() error('sink exploded') end})
	T.eq(select(2, http.request(base .. '/ten')), 200, 'fine after a sink raised')
	ok, err = http.request('https://127.0.0.1:1/')
	T.eq(ok, nil, 'https to a closed port fails')
	T.eq(err, 'connection refused', 'as a connection error')
	ok, err = http.request('ftp://127.0.0.1/')
	T.eq(err, "unsupported scheme 'ftp'", 'other schemes')
	ok, err = http.request('not a url')
	T.eq(err, "invalid url 'not a url'", 'invalid url')
	ok, err = http.request('http://127.0.0.1:99999/')
	T.ok(tostring(err):find('invalid url', 1, true), 'port out of range')
	T.raises("bad argument #1 to 'request' (string or table expected, got nil)", http.request)
	T.raises("bad argument #2 to 'request'", http.request, base, {})
	T.raises("field 'url': string expected", http.request, {})
	T.raises("field 'sink': function expected", http.request, {url = base, sink = 'x'})
	T.raises("field 'timeout': number or table expected", http.request, {url = base, timeout = 'x'})
	T.raises("invalid value for header 'x'", http.request, {url = base, headers = {x = 'a\r\nb: c'}})
	T.raises("invalid header name", http.request, {url = base, headers = {['a b'] = '1'}})
	-- misuse is reported at the caller's line (not its caller's), in both forms
	local line = debug.getinfo(1, 'l').currentline
	local function misuse_table() http.request{url = base, method = 1} end
	local function misuse_string() http.request(base, {}) end
	local _, where = pcall(misuse_table)
	T.ok(tostring(where):find('http_scripted.lua:' .. (line + 1) .. ':', 1, true), 'error names the caller: ' .. tostring(where))
	_, where = pcall(misuse_string)
	T.ok(tostring(where):find('http_scripted.lua:' .. (line + 2) .. ':', 1, true), 'error names the caller: ' .. tostring(where))
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
