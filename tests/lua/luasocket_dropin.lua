-- socketloop.socket, LuaSocket's module on asockets, installed by loop.luasocket(): Debian's
-- socket.http with no `create`, socket.smtp against an SMTP server written here, select
-- parking a loop thread, the exception helpers, and socket.http loaded before socketloop.
local loop = require'socketloop'
local T = require'testlib'
local H = require'http_support'

local socket = loop.luasocket()
T.eq(require'socket', socket, "require'socket' gives the drop-in")
T.eq(rawget(_G, 'socket'), socket, 'and so does the global socket')
T.ok(socket._VERSION:find('^LuaSocket 3'), '_VERSION: ' .. socket._VERSION)
for _, name in ipairs{'tcp', 'tcp4', 'tcp6', 'udp', 'udp4', 'udp6', 'connect', 'bind', 'select',
		'sleep', 'gettime', 'protect', 'try', 'newtry', 'skip', 'sink', 'source', 'choose'} do
	T.eq(type(socket[name]), 'function', 'socket.' .. name)
end
for _, name in ipairs{'toip', 'tohostname', 'getaddrinfo', 'gethostname'} do
	T.eq(type(socket.dns[name]), 'function', 'socket.dns.' .. name)
end

local http = require'socket.http'
local smtp = require'socket.smtp'
local ltn12 = require'ltn12'
local mime = require'mime'
local url = require'socket.url'

T.run('exception helpers', function()
	local try = socket.newtry(function() end)
	local f = socket.protect(function(x)
		try(x ~= 'fail', 'tried and failed')
		if x == 'raise' then error('a real error', 0) end
		loop.sleep(0) -- a protected function may park
		return x, 'second'
	end)
	local a, b = f('ok')
	T.ok(a == 'ok' and b == 'second', 'results pass through')
	a, b = f('fail')
	T.ok(a == nil and b == 'tried and failed', "try's error becomes nil, err")
	local ok, err = pcall(f, 'raise')
	T.ok(not ok and err == 'a real error', 'other errors propagate: ' .. tostring(err))
	local finalized = false
	local try2 = socket.newtry(function() finalized = true end)
	a, b = socket.protect(function() return try2(nil, 'x') end)()
	T.ok(a == nil and b == 'x' and finalized, 'the finalizer runs')
	T.eq(socket.skip(1, 'a', 'b', 'c'), 'b', 'skip')
	T.ok(math.abs(socket.gettime() - os.time()) < 2, 'gettime is the wall clock')
	local ip = socket.dns.toip('127.0.0.1')
	T.eq(ip, '127.0.0.1', 'toip of a literal')
	local infos = socket.dns.getaddrinfo('localhost')
	T.ok(type(infos) == 'table' and #infos > 0 and infos[1].addr, 'getaddrinfo localhost')
	T.eq(url.escape('a b'), 'a%20b', 'socket.url')
	T.eq((mime.b64('hi')), 'aGk=', 'mime')
end)

T.run('select parks a loop thread', function()
	local server = assert(socket.bind('127.0.0.1', 0))
	local _, port = server:getsockname()
	local a = assert(socket.connect('127.0.0.1', port))
	local a_peer = assert(server:accept())
	local b = assert(socket.connect('127.0.0.1', port))
	local b_peer = assert(server:accept())
	local r, w, err = socket.select({a_peer, b_peer}, nil, 0.05)
	T.ok(#r == 0 and #w == 0 and err == 'timeout', 'nothing to read: timeout')
	local woke
	loop.newthread(function()
		woke = {socket.select({a_peer, b_peer}, nil, 10)}
	end)
	T.eq(woke, nil, 'select waits')
	b:send('to b\n')
	for _ = 1, 1000 do
		if woke then break end
		loop.sleep(0.001)
	end
	T.ok(woke and woke[1][1] == b_peer and woke[1][b_peer] == 1 and #woke[1] == 1,
		'select woke with b readable')
	T.eq(b_peer:receive(), 'to b', 'and b reads')
	-- several ready at once, and writability
	a:send('to a\n')
	b:send('to b again\n')
	r, w = socket.select({a_peer, b_peer}, {a}, 1)
	T.eq(#r, 2, 'both readable')
	T.ok(w[1] == a and w[a] == 1, 'a writable')
	T.eq(a_peer:receive(), 'to a', 'a reads')
	T.eq(b_peer:receive(), 'to b again', 'b reads again')
	-- data already buffered counts as readable (dirty), as in LuaSocket
	b:send('one\ntwo\n')
	socket.select({b_peer}, nil, 1)
	T.eq(b_peer:receive(), 'one', 'first line')
	r = socket.select({b_peer}, nil, 0)
	T.eq(r[1], b_peer, 'the second line is buffered: readable at once')
	T.eq(b_peer:receive(), 'two', 'second line')
	-- with no sockets it sleeps
	r, w, err = socket.select(nil, nil, 0.01)
	T.ok(#r == 0 and #w == 0 and err == 'timeout', 'no sockets: timeout')
	T.ok(not pcall(socket.select, 'wrong', nil, 0.1), 'a bad argument raises')
	for _, s in ipairs{a, b, a_peer, b_peer, server} do s:close() end
	T.eq(loop.stats().pending, 0, 'no helper thread left parked')
end)

-- The classic zero-timeout pattern with LuaSocket's own (C) select on asockets: every
-- message select reports is received, in a loop thread and in the main chunk.
local function zero_timeout_select()
	local luasocket_select = require'socket.core'.select
	local server = assert(loop.tcp('127.0.0.1', 0))
	assert(server:listen())
	local _, port = server:getsockname()
	local c = assert(loop.connect('127.0.0.1', port))
	local s = assert(server:accept())
	s:settimeout(0)
	local got = {}
	for i = 1, 5 do
		c:send('message ' .. i .. '\n')
		local r = luasocket_select({s}, nil, 5)
		T.eq(r[1], s, 'select reports message ' .. i)
		got[i] = s:receive()
	end
	T.eq(table.concat(got, ','), 'message 1,message 2,message 3,message 4,message 5', 'zero timeout: every message')
	T.eq(select(2, s:receive()), 'timeout', 'and then timeout')
	for _, x in ipairs{c, s, server} do x:close() end
end
T.run('zero timeout after select, loop thread', zero_timeout_select)
zero_timeout_select()

T.run('udp through the drop-in, and select on it', function()
	local a = assert(socket.udp())
	assert(a:setsockname('127.0.0.1', 0))
	local ip, port = a:getsockname()
	local b = assert(socket.udp4())
	T.ok(b:getfd() >= 0, 'udp4 has its descriptor at once')
	local woke
	loop.newthread(function()
		woke = socket.select({a}, nil, 10)
	end)
	T.eq(woke, nil, 'select waits on a UDP socket')
	assert(b:sendto('datagram', ip, port))
	for _ = 1, 1000 do
		if woke then break end
		loop.sleep(0.001)
	end
	T.ok(woke and woke[1] == a, 'select woke with the UDP socket readable')
	local data, from = a:receivefrom()
	T.eq(data, 'datagram', 'the datagram')
	T.eq(from, '127.0.0.1', 'from')
	a:close()
	b:close()
end)

-- select outside a loop thread (stock luajit's main chunk): it blocks, as LuaSocket's.
do
	local server = assert(socket.bind('127.0.0.1', 0))
	local _, port = server:getsockname()
	local c = assert(socket.connect('127.0.0.1', port))
	local s = assert(server:accept())
	local r, _, err = socket.select({s}, nil, 0.02)
	T.ok(#r == 0 and err == 'timeout', 'main chunk: timeout')
	c:send('x\n')
	r = socket.select({s}, nil, 5)
	T.eq(r[1], s, 'main chunk: readable')
	T.eq(s:receive(), 'x', 'main chunk: read')
	for _, x in ipairs{c, s, server} do x:close() end
end

T.run('socket.http with no create: 40 pages at once', function()
	local dir = H.tmpdir()
	local pages = {}
	for i = 1, 40 do
		pages[i] = ('page %d\n'):format(i):rep(i * 50)
		H.write(('%s/p%d.txt'):format(dir, i), pages[i])
	end
	local py, base = H.python_server(dir, 'HTTP/1.0', 128)
	local done, overlapped = 0, 0
	for i = 1, 40 do
		loop.newthread(function()
			overlapped = math.max(overlapped, i - done)
			local body, code = http.request(('%sp%d.txt'):format(base, i))
			T.eq(code, 200, 'code ' .. i)
			T.ok(body == pages[i], 'body ' .. i)
			done = done + 1
		end)
	end
	T.ok(done < 40, 'the requests wait at once')
	for _ = 1, 6000 do
		if done == 40 then break end
		loop.sleep(0.01)
	end
	T.eq(done, 40, 'pages')
	local t = {}
	local ok, code = http.request{url = base .. 'p3.txt', sink = ltn12.sink.table(t)}
	T.ok(ok == 1 and code == 200 and table.concat(t) == pages[3], 'the table form')
	H.stop(py)
	H.rmdir(dir)
end)

-- An SMTP server good enough for socket.smtp: one mail per connection, kept in `mails`.
local function smtp_server(mails)
	return assert(loop.newserver('127.0.0.1', 0, function(c)
		c:send('220 test.invalid ESMTP ready\r\n')
		local mail = {rcpt = {}}
		while true do
			local line = c:receive()
			if not line then break end
			local verb = line:match('^(%a+)'):upper()
			if verb == 'EHLO' or verb == 'HELO' then
				c:send('250-test.invalid\r\n250 8BITMIME\r\n')
			elseif verb == 'MAIL' then
				mail.from = line:match('<(.-)>')
				c:send('250 sender ok\r\n')
			elseif verb == 'RCPT' then
				mail.rcpt[#mail.rcpt + 1] = line:match('<(.-)>')
				c:send('250 recipient ok\r\n')
			elseif verb == 'DATA' then
				c:send('354 go ahead\r\n')
				local lines = {}
				while true do
					local l = c:receive()
					if not l or l == '.' then break end
					lines[#lines + 1] = l
				end
				mail.data = table.concat(lines, '\n')
				mails[#mails + 1] = mail
				c:send('250 queued\r\n')
			elseif verb == 'QUIT' then
				c:send('221 bye\r\n')
				break
			else
				c:send('502 not implemented\r\n')
			end
		end
		c:close()
	end))
end

T.run('socket.smtp: 20 mails at once', function()
	local mails = {}
	local server = smtp_server(mails)
	local _, port = server:getsockname()
	local results = {}
	for i = 1, 20 do
		loop.newthread(function()
			local msg = smtp.message{
				headers = {to = '<to@test.invalid>', subject = 'mail ' .. i},
				body = 'body of mail ' .. i,
			}
			results[i] = {smtp.send{
				from = '<from' .. i .. '@test.invalid>',
				rcpt = {'<to@test.invalid>', '<cc' .. i .. '@test.invalid>'},
				source = msg,
				server = '127.0.0.1',
				port = port,
			}}
		end)
	end
	local function sent()
		for i = 1, 20 do
			if not results[i] then return false end
		end
		return true
	end
	for _ = 1, 2000 do
		if #mails == 20 and sent() then break end
		loop.sleep(0.005)
	end
	T.eq(#mails, 20, 'mails received')
	local seen = {}
	for _, m in ipairs(mails) do
		local i = tonumber(m.from:match('^from(%d+)@'))
		seen[i] = true
		T.eq(m.rcpt[2], 'cc' .. i .. '@test.invalid', 'recipients of mail ' .. i)
		T.ok(m.data:lower():find('subject: mail ' .. i, 1, true) and m.data:find('body of mail ' .. i, 1, true),
			'content of mail ' .. i .. ': ' .. m.data)
	end
	for i = 1, 20 do
		T.ok(seen[i], 'mail ' .. i .. ' arrived')
		T.eq(results[i] and results[i][1], 1, 'smtp.send ' .. i .. ' returned 1')
	end
	local r, err = smtp.send{from = '<a@test.invalid>', rcpt = '<b@test.invalid>',
		source = ltn12.source.string('x'), server = '127.0.0.1', port = 1}
	T.ok(r == nil and err == 'connection refused', 'a refused connection: nil, err: ' .. tostring(err))
	server:close()
end)

-- socket.http required before socketloop: loading socketloop re-wraps its request, so
-- it works in loop threads (a child process, where nothing loaded socketloop first).
do
	local dir = H.tmpdir()
	H.write(dir .. '/f.txt', 'early\n')
	local py, base = H.python_server(dir, 'HTTP/1.0', 16)
	H.write(dir .. '/early.lua', ([[
		local http = require'socket.http'
		local before = debug.getinfo(http.request, 'S').what
		local loop = require'socketloop'
		local after = debug.getinfo(http.request, 'S').what
		local body
		loop.newthread(function()
			body = http.request{url = %q, sink = ltn12.sink.table({}),
				create = function() return loop.wrap(socket.try(socket.tcp())) end}
			body = body and 'ok'
		end)
		loop.start()
		print(before, after, body)
	]]):format(base .. 'f.txt'))
	local out, status = H.run(H.interpreter() .. ' ' .. H.quote(dir .. '/early.lua') .. ' 2>&1')
	T.eq(status, 0, 'the child ran: ' .. out)
	-- (The runner loads socketloop before any script: there request is never C.)
	local before = T.mode == 'luajit' and 'C' or 'Lua'
	T.eq(out, before .. '\tLua\tok\n', 'socket.http loaded first is fixed')
	H.stop(py)
	H.rmdir(dir)
end

T.finish()
