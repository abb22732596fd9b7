-- socketloop.httpserver over raw connections: keep-alive (HTTP/1.1, and HTTP/1.0 with
-- Connection: keep-alive), pipelined requests answered in order, chunked request bodies,
-- Expect: 100-continue, head limits (431 or 414, then close), body limits, a slow client
-- and an idle one timed out, handler errors, streamed responses, graceful close.
local loop = require'socketloop'
local httpserver = require'socketloop.httpserver'
local T = require'testlib'
local N = require'testnet'

-- Reads one response from `s`: status code, header table (lower-case names), body,
-- status line; nil and the error when the connection ends first. `head_only`: a
-- response to HEAD (no body whatever the headers say).
local function read_response(s, head_only)
	local line, err = s:receive('*l')
	if not line then return nil, err end
	local code = tonumber(line:match('^HTTP/1%.1 (%d%d%d) '))
	local headers = {}
	while true do
		local l = s:receive('*l')
		if not l then return nil, 'head cut' end
		if l == '' then break end
		local name, value = l:match('^([^:]+): (.*)$')
		if not name then return nil, 'bad header line ' .. l end
		headers[name:lower()] = value
	end
	if head_only or code == 100 or code == 204 or code == 304 then
		return code, headers, '', line
	end
	local body
	if headers['content-length'] then
		body = s:receive(tonumber(headers['content-length']))
	elseif headers['transfer-encoding'] == 'chunked' then
		local parts = {}
		while true do
			local size = tonumber(s:receive('*l'), 16)
			if size == 0 then
				assert(s:receive('*l') == '')
				break
			end
			parts[#parts + 1] = s:receive(size)
			assert(s:receive('*l') == '')
		end
		body = table.concat(parts)
	else
		body = s:receive('*a')
	end
	return code, headers, body, line
end

-- The handler of most tests: echoes what it saw.
local function echo_handler(req, res)
	if req.path == '/boom' then error('handler failed on purpose') end
	if req.path == '/stream' then
		res:header('X-Streamed', 'yes')
		res:write('one,')
		res:write('')
		res:write('two,')
		res:write('three')
		return
	end
	if req.path == '/status' then
		res.status = tonumber(req.query)
		return res:send('status ' .. req.query .. '\n')
	end
	if req.path == '/parts' then
		return res:send({'a', 'bb', 'ccc'})
	end
	res:header('X-Method', req.method)
	res:header('X-Version', req.version)
	res:send(req.method .. ' ' .. req.target .. ' ' .. #req.body .. ' ' .. req.body)
end

-- A server with `opts` over echo_handler, run for body(port, server); closed after.
local function with_server(name, opts, body)
	T.run(name, function()
		opts.host, opts.port = '127.0.0.1', 0
		opts.handler = opts.handler or echo_handler
		local server = assert(httpserver.new(opts))
		local _, port = server:getsockname()
		body(port, server)
		server:close()
	end)
end

local function connect(port)
	local s = assert(loop.connect('127.0.0.1', port))
	s:settimeout(10)
	return s
end

with_server('keep-alive HTTP/1.1', {}, function(port, server)
	local s = connect(port)
	for i = 1, 3 do
		assert(s:send('GET /k' .. i .. ' HTTP/1.1\r\nHost: x\r\n\r\n'))
		local code, h, body = read_response(s)
		T.eq(code, 200, 'status ' .. i)
		T.eq(body, 'GET /k' .. i .. ' 0 ', 'body ' .. i)
		T.eq(h.connection, nil, 'no Connection header on a kept-alive 1.1 response')
		T.ok(h.date and h.date:match('^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$'), 'Date: ' .. tostring(h.date))
		T.eq(h['x-version'], '1.1', 'version seen by the handler')
	end
	assert(s:send('GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))
	local code, h = read_response(s)
	T.eq(code, 200, 'last status')
	T.eq(h.connection, 'close', 'Connection: close answered')
	T.eq(select(2, s:receive('*l')), 'closed', 'server closed after Connection: close')
	s:close()
	T.eq(server:stats().connections, 1, 'one connection for four requests')
	T.eq(server:stats().requests, 4, 'four requests')
end)

with_server('keep-alive HTTP/1.0', {}, function(port)
	local s = connect(port)
	for i = 1, 2 do
		assert(s:send('GET /a' .. i .. ' HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n'))
		local code, h, body = read_response(s)
		T.eq(code, 200, '1.0 keep-alive status')
		T.eq(h.connection, 'keep-alive', '1.0 keep-alive answered with the header')
		T.eq(body, 'GET /a' .. i .. ' 0 ', '1.0 keep-alive body')
		T.eq(h['x-version'], '1.0', 'version seen by the handler')
	end
	-- without the header, an HTTP/1.0 connection is closed after its response
	assert(s:send('GET /b HTTP/1.0\r\n\r\n'))
	local code, h = read_response(s)
	T.eq(code, 200, 'plain 1.0 status')
	T.eq(h.connection, 'close', 'plain 1.0 gets Connection: close')
	T.eq(select(2, s:receive('*l')), 'closed', 'plain 1.0 closed after the response')
	s:close()
	-- an HTTP/1.0 client gets a streamed body without chunks, ended by the close
	s = connect(port)
	assert(s:send('GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'))
	local body
	code, h, body = read_response(s)
	T.eq(code, 200, '1.0 streamed status')
	T.eq(h['transfer-encoding'], nil, 'no chunks for 1.0')
	T.eq(h.connection, 'close', 'a close-delimited body closes')
	T.eq(body, 'one,two,three', '1.0 streamed body')
	s:close()
end)

with_server('pipelined requests answered in order', {}, function(port)
	local s = connect(port)
	local batch = {}
	for i = 1, 20 do
		if i % 5 == 0 then
			local b = ('p'):rep(i)
			batch[#batch + 1] = 'POST /p' .. i .. ' HTTP/1.1\r\nHost: x\r\nContent-Length: ' .. #b .. '\r\n\r\n' .. b
		else
			batch[#batch + 1] = 'GET /p' .. i .. ' HTTP/1.1\r\nHost: x\r\n\r\n'
		end
	end
	batch[#batch + 1] = 'HEAD /p21 HTTP/1.1\r\nHost: x\r\n\r\n'
	batch[#batch + 1] = 'GET /p22 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
	-- all requests in one send, then the same again one byte at a time
	assert(s:send(table.concat(batch)))
	for i = 1, 20 do
		local code, _, body = read_response(s)
		T.eq(code, 200, 'pipelined status ' .. i)
		local want = i % 5 == 0 and ('POST /p%d %d %s'):format(i, i, ('p'):rep(i)) or ('GET /p%d 0 '):format(i)
		T.eq(body, want, 'pipelined body ' .. i)
	end
	local code, h, body = read_response(s, true)
	T.eq(code, 200, 'HEAD status')
	T.eq(h['content-length'], tostring(#'HEAD /p21 0 '), 'HEAD has the length of the body it does not get')
	T.eq(body, '', 'HEAD has no body')
	code, _, body = read_response(s)
	T.eq(body, 'GET /p22 0 ', 'the last one')
	T.eq(select(2, s:receive('*l')), 'closed', 'closed after the last')
	s:close()
	s = connect(port)
	local all = table.concat(batch, '', 1, 6)
	for i = 1, #all do assert(s:send(all:sub(i, i))) end
	for i = 1, 6 do
		code, _, body = read_response(s)
		T.eq(code, 200, 'byte-by-byte status ' .. i)
		T.ok(body:find('/p' .. i .. ' ', 1, true), 'byte-by-byte order ' .. i)
	end
	s:close()
end)

with_server('chunked request bodies', {max_body = 100}, function(port)
	local s = connect(port)
	assert(s:send('POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'
		.. '5\r\nhello\r\n1;ext=1\r\n,\r\nA \r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n'))
	local code, _, body = read_response(s)
	T.eq(code, 200, 'chunked status')
	T.eq(body, 'POST /c 16 hello,0123456789', 'chunks joined, extensions and trailer dropped')
	-- over max_body in chunks: 413 and close
	assert(s:send('POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'
		.. '40\r\n' .. ('x'):rep(64) .. '\r\n40\r\n'))
	code = read_response(s)
	T.eq(code, 413, 'chunked over max_body')
	T.eq(select(2, s:receive('*l')), 'closed', 'closed after 413')
	s:close()
	-- a bad chunk size: 400 and close
	s = connect(port)
	assert(s:send('POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'))
	T.eq((read_response(s)), 400, 'bad chunk size')
	s:close()
	-- Content-Length with Transfer-Encoding: refused
	s = connect(port)
	assert(s:send('POST /both HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n'))
	T.eq((read_response(s)), 400, 'both framings refused')
	s:close()
	-- Content-Length over max_body: 413 without reading it
	s = connect(port)
	assert(s:send('POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n'))
	T.eq((read_response(s)), 413, 'Content-Length over max_body')
	s:close()
end)

with_server('Expect: 100-continue', {max_body = 100}, function(port)
	local s = connect(port)
	assert(s:send('PUT /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n'))
	local code, _, _, line = read_response(s)
	T.eq(code, 100, '100 Continue first')
	T.eq(line, 'HTTP/1.1 100 Continue', 'the interim status line')
	assert(s:send('data'))
	local body
	code, _, body = read_response(s)
	T.eq(code, 200, 'then the response')
	T.eq(body, 'PUT /e 4 data', 'the body sent after 100')
	-- chunked with 100-continue
	assert(s:send('PUT /e2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-Continue\r\n\r\n'))
	T.eq((read_response(s)), 100, '100 Continue for a chunked body')
	assert(s:send('2\r\nok\r\n0\r\n\r\n'))
	code, _, body = read_response(s)
	T.eq(body, 'PUT /e2 2 ok', 'chunked body after 100')
	-- too big: a final 413 instead of 100, and close
	assert(s:send('PUT /e3 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n'))
	T.eq((read_response(s)), 413, 'no 100 for a body over the limit')
	T.eq(select(2, s:receive('*l')), 'closed', 'closed after 413')
	s:close()
	-- another expectation: 417
	s = connect(port)
	assert(s:send('PUT /e4 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: something\r\n\r\n'))
	T.eq((read_response(s)), 417, 'unknown expectation')
	s:close()
end)

with_server('head limits: 431 or 414, then close', {max_line = 100, max_head = 300, max_fields = 5}, function(port)
	local function expect(request, want, what)
		local s = connect(port)
		s:send(request)
		local code, h = read_response(s)
		T.eq(code, want, what)
		T.eq(h and h.connection, 'close', what .. ': Connection: close')
		T.eq(select(2, s:receive('*l')), 'closed', what .. ': closed')
		s:close()
	end
	expect('GET / HTTP/1.1\r\nHost: x\r\nX-Long: ' .. ('v'):rep(200) .. '\r\n\r\n', 431, 'a field line over max_line')
	local fields = {}
	for i = 1, 4 do fields[i] = 'X-F' .. i .. ': ' .. ('v'):rep(80) .. '\r\n' end
	expect('GET / HTTP/1.1\r\nHost: x\r\n' .. table.concat(fields) .. '\r\n', 431, 'a head over max_head')
	fields = {}
	for i = 1, 6 do fields[i] = 'X-F' .. i .. ': v\r\n' end
	expect('GET / HTTP/1.1\r\n' .. table.concat(fields) .. '\r\n', 431, 'more than max_fields')
	expect('GET /' .. ('u'):rep(200) .. ' HTTP/1.1\r\nHost: x\r\n\r\n', 414, 'a request line over max_line')
	-- a line with no end at all is cut at the limit, not buffered without bound
	expect('GET / HTTP/1.1\r\nX: ' .. ('v'):rep(100000), 431, 'an endless field line')
	expect('GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n', 400, 'a blank in a field name')
	expect('GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n', 400, 'a folded line')
	expect('GET / HTTP/1.1\r\n\r\n', 400, 'HTTP/1.1 without Host')
	expect('GET /\r\n\r\n', 400, 'no version')
	expect('GET / HTTP/2.0\r\n\r\n', 505, 'an unsupported version')
	expect('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n', 400, 'a bad Content-Length')
	expect('GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n', 501, 'an unknown transfer coding')
end)

with_server('slow and idle clients timed out', {idle_timeout = 0.3, request_timeout = 0.3}, function(port, server)
	-- a slow client: a head one byte every 50 ms never completes within 0.3 s
	local outcome = N.spawn(function()
		local s = connect(port)
		local head = 'GET /slow HTTP/1.1\r\nHost: x\r\nX-Pad: ' .. ('p'):rep(40) .. '\r\n\r\n'
		local sent = 0
		for i = 1, #head do
			if not s:send(head:sub(i, i)) then break end
			sent = i
			loop.sleep(0.05)
		end
		local line, err = s:receive('*l')
		s:close()
		return sent, line, err
	end)
	-- served meanwhile: a client that sends at once
	local s = connect(port)
	s:send('GET /fast HTTP/1.1\r\nHost: x\r\n\r\n')
	local code, _, body = read_response(s)
	T.eq(code, 200, 'a fast client is served while the slow one trickles')
	T.eq(body, 'GET /fast 0 ', 'fast body')
	-- then it stays idle: closed after idle_timeout
	T.eq(select(2, s:receive('*l')), 'closed', 'an idle connection is closed')
	s:close()
	N.await(function() return outcome() end, 'the slow client', 500, 0.01)
	local r = outcome() or {}
	local sent, line, err = r[1], r[2], r[3]
	T.ok(sent and sent < 60, 'the slow client was cut off before its head was complete: ' .. tostring(sent))
	T.eq(line, nil, 'no response for the slow client')
	T.eq(err, 'closed', 'the slow client was closed')
	T.eq(server:stats().timeouts, 2, 'two connections timed out')
end)

with_server('handler errors, statuses, streaming, parts', {}, function(port)
	local errors = {}
	local previous = loop.onerror(function(err) errors[#errors + 1] = tostring(err) end)
	local s = connect(port)
	s:send('GET /boom HTTP/1.1\r\nHost: x\r\n\r\n')
	local code, h = read_response(s)
	T.eq(code, 500, 'a handler error gives 500')
	T.eq(h.connection, 'close', 'and closes')
	loop.onerror(previous)
	T.eq(#errors, 1, 'the error reached loop.onerror')
	T.ok((errors[1] or ''):find('handler failed on purpose', 1, true), 'the error message')
	s:close()
	s = connect(port)
	s:send('GET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /status?404 HTTP/1.1\r\nHost: x\r\n\r\n'
		.. 'GET /status?204 HTTP/1.1\r\nHost: x\r\n\r\nGET /parts HTTP/1.1\r\nHost: x\r\n\r\n')
	local body
	code, h, body = read_response(s)
	T.eq(h['transfer-encoding'], 'chunked', 'a streamed response is chunked')
	T.eq(h['x-streamed'], 'yes', 'with its header')
	T.eq(body, 'one,two,three', 'streamed body')
	code, _, body = read_response(s)
	T.eq(code, 404, 'res.status')
	T.eq(body, 'status 404\n', '404 body')
	code, h = read_response(s)
	T.eq(code, 204, '204')
	T.eq(h['content-length'], nil, 'no length on 204')
	T.eq(h['content-type'], nil, 'no type on 204')
	code, _, body = read_response(s)
	T.eq(body, 'abbccc', 'a body of parts')
	s:close()
end)

T.run('handler misuse is refused', function()
	local checked = false
	local server = assert(httpserver.new{host = '127.0.0.1', port = 0, handler = function(req, res)
		T.raises("bad argument #2 to 'header' (CR or LF", res.header, res, 'X-A', 'a\r\nX-Injected: 1')
		T.raises('invalid header name', res.header, res, 'X A', 'v')
		T.raises('set by the server', res.header, res, 'Content-Length', '5')
		T.raises("bad argument #1 to 'send'", res.send, res, 42)
		res:send('ok')
		T.raises("calling 'send' on a response already sent", res.send, res, 'again')
		checked = true
	end})
	local _, port = server:getsockname()
	local s = connect(port)
	s:send('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
	local code, _, body = read_response(s)
	T.eq(code, 200, 'the response after the refused calls')
	T.eq(body, 'ok', 'its body')
	T.ok(checked, 'the handler ran its checks')
	s:close()
	server:close()
	T.raises("bad argument #1 to 'new' (handler: function expected", httpserver.new, {})
	T.raises("bad argument #1 to 'new' (max_body: positive finite number expected", httpserver.new,
		{handler = print, max_body = -1})
	T.raises("bad argument #1 to 'new' (idle_timeout: positive finite number expected", httpserver.new,
		{handler = print, idle_timeout = 0 / 0})
	T.raises("bad argument #1 to 'new' (max_line: whole number expected", httpserver.new,
		{handler = print, max_line = 1.5})
	T.raises("bad argument #1 to 'close' (non-negative number expected", server.close, server, -1)
end)

T.run('graceful close', function()
	local release
	local server = assert(httpserver.new{host = '127.0.0.1', port = 0, handler = function(req, res)
		if req.path == '/slow' then
			release = loop.current()
			loop.suspend()
		end
		res:send('done ' .. req.path)
	end})
	local _, port = server:getsockname()
	local idle, busy = connect(port), connect(port)
	idle:send('GET /first HTTP/1.1\r\nHost: x\r\n\r\n')
	T.eq(select(3, read_response(idle)), 'done /first', 'served before the close')
	busy:send('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
	N.await(function() return release end, 'the slow handler to start')
	server:close()
	T.eq(select(2, idle:receive('*l')), 'closed', 'an idle connection is closed at once')
	T.eq(loop.connect('127.0.0.1', port), nil, 'no more connections accepted')
	loop.resume(release)
	local code, h, body = read_response(busy)
	T.eq(code, 200, 'the request under way is answered')
	T.eq(body, 'done /slow', 'with its body')
	T.eq(h.connection, 'close', 'and Connection: close')
	T.eq(select(2, busy:receive('*l')), 'closed', 'then closed')
	idle:close()
	busy:close()
	N.await(function() return server:stats().open == 0 end, 'the connections to end')
end)

-- Last: a shutdown stays in force for the rest of the process.
T.run('loop.shutdown closes the idle connections', function()
	local server = assert(httpserver.new{host = '127.0.0.1', port = 0, handler = echo_handler})
	local _, port = server:getsockname()
	local idle = connect(port)
	idle:send('GET /before HTTP/1.1\r\nHost: x\r\n\r\n')
	T.eq(select(3, read_response(idle)), 'GET /before 0 ', 'served before the shutdown')
	local done = loop.shutdown(5)
	T.eq(done, true, 'every thread ended within the grace, the server\'s included')
	T.eq(select(2, idle:receive('*l')), 'closed', 'the idle connection was closed')
	T.eq(server:stats().open, 0, 'no connection left open')
	idle:close()
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
