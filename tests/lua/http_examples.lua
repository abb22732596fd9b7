-- The HTTP examples, run as their users run them, under the same interpreter as this
-- test: examples/http_server.lua as a child process, examples/fetch.lua and
-- examples/luasocket_http.lua against it; their output is checked line by line.
local loop = require'socketloop'
local http = require'socketloop.http'
local T = require'testlib'
local H = require'http_support'

local server, base = H.example_server()
local run = H.interpreter()

-- From the main chunk: under stock luajit that is outside any loop thread, where a
-- request blocks (in poll(2)) like LuaSocket's; under the runner it is a loop thread.
T.eq(http.request(base .. '/top'), 'you asked for /top\n', 'a request from the main chunk')
T.eq(http.request(base .. '/top2'), 'you asked for /top2\n', 'again, kept alive')
http.closeidle()

T.run('http_server.lua as a process', function()
	T.eq(http.request(base .. '/hello'), 'you asked for /hello\n', 'a page')
	T.eq(http.request(base .. '/bytes/12'), '012345678901', '/bytes/N')
	T.eq(http.request(base .. '/echo', 'posted'), 'posted', '/echo')
	local _, code, headers = http.request{url = base .. '/bytes/5', method = 'HEAD'}
	T.eq(code, 200, 'HEAD')
	T.eq(headers['content-length'], '5', 'HEAD length')
	local stats = http.request(base .. '/stats')
	-- one connection for the main chunk's two requests, one for these five
	T.ok(stats:match('^connections=2 requests=7\n$'), 'stats over kept-alive connections: ' .. stats)
	http.closeidle()
end)

T.run('fetch.lua', function()
	local urls = {base .. '/a', base .. '/bytes/100000', base .. '/close/c'}
	local out, status = H.run(run .. ' examples/fetch.lua -c 2 -n 3 ' .. table.concat(urls, ' '))
	T.eq(status, 0, 'exit status')
	T.ok(not out:find('\r', 1, true), 'piped: no progress line')
	local lines = {}
	for line in out:gmatch('[^\n]+') do lines[#lines + 1] = line end
	T.ok((table.remove(lines, 1) or ''):find('^status +bytes +mean +slowest +count +url$'), 'header line:\n' .. out)
	T.eq(#lines, 4, 'a line per URL and the totals:\n' .. out)
	local sizes = {#'you asked for /a\n', 100000, #'you asked for /close/c\n'}
	for i, url in ipairs(urls) do
		local code, bytes, fetches, shown = (lines[i] or ''):match('^(%d+)%s+(%d+) B .- (%d+) x  (%S+)$')
		T.eq(code, '200', 'status of ' .. url)
		T.eq(tonumber(bytes), sizes[i], 'bytes of ' .. url)
		T.eq(fetches, '3', 'fetches of ' .. url)
		T.eq(shown, url, 'url ' .. i)
	end
	local total = 3 * (sizes[1] + sizes[2] + sizes[3])
	T.ok((lines[4] or ''):find('^total: 9 fetches, 0 failed, ' .. total .. ' bytes in '), 'totals: ' .. tostring(lines[4]))
	-- a failing URL: reported, and the exit status says so
	local closed = assert(loop.tcp('127.0.0.1', 0))
	local _, port = closed:getsockname()
	closed:close()
	out, status = H.run(run .. ' examples/fetch.lua http://127.0.0.1:' .. port .. '/ ' .. base .. '/ok')
	T.eq(status, 1, 'exit status with a failure')
	T.ok(out:find('^status[^\n]*\nerror '), 'error line first: ' .. out)
	T.ok(out:find('(connection refused)', 1, true), 'error message shown')
	T.ok(out:find('total: 2 fetches, 1 failed', 1, true), 'totals with a failure')
	-- on a terminal (script(1) gives it one), a progress line is drawn and cleared
	out = H.run('script -qec ' .. H.quote(run .. ' examples/fetch.lua -n 5 ' .. base .. '/t') .. ' /dev/null')
	T.ok(out:find('\r', 1, true), 'terminal: progress drawn with CR')
	T.ok(out:find('\27[K', 1, true), 'terminal: progress line cleared')
	T.ok(out:find('total: 5 fetches, 0 failed', 1, true), 'terminal: totals')
	_, status = H.run(run .. ' examples/fetch.lua -c x ' .. base .. ' 2>/dev/null')
	T.eq(status, 2, 'bad option: usage')
	-- a 404 is a fetch that worked; with -f it counts as a failure
	local hostport = base:match('^http://(.*)$')
	out, status = H.run(run .. ' examples/fetch.lua ' .. base .. '/bytes/99999999 ' .. hostport .. '/ok')
	T.eq(status, 0, 'a 400 without -f: exit status 0\n' .. out)
	T.ok(out:find('\n400 [^\n]* ' .. base:gsub('%p', '%%%0') .. '/bytes/99999999\n'), '400 shown: ' .. out)
	T.ok(out:find(' http://' .. hostport:gsub('%p', '%%%0') .. '/ok\n'), 'scheme-less URL fetched as http: ' .. out)
	out, status = H.run(run .. ' examples/fetch.lua -f ' .. base .. '/bytes/99999999 ' .. base .. '/ok')
	T.eq(status, 1, 'a 400 with -f: exit status 1')
	T.ok(out:find('total: 2 fetches, 1 failed', 1, true), '-f: counted as failed: ' .. out)
	_, status = H.run(run .. ' examples/fetch.lua -f ' .. base .. '/ok')
	T.eq(status, 0, '-f with every fetch fine: exit status 0')
	-- -o DIR: the bodies saved, named after the URLs
	local dir = H.tmpdir()
	out, status = H.run(run .. ' examples/fetch.lua -n 3 -o ' .. dir .. ' ' .. base .. '/bytes/70000 '
		.. base .. '/x/name ' .. base .. '/y/name ' .. base .. '/')
	T.eq(status, 0, '-o: exit status\n' .. out)
	local function slurp(name)
		local f = io.open(dir .. '/' .. name, 'rb')
		if not f then return nil end
		local data = f:read('*a')
		f:close()
		return data
	end
	T.eq(#(slurp('70000') or ''), 70000, '-o: /bytes/70000 saved as 70000')
	T.ok((slurp('70000') or ''):sub(1, 12) == '012345678901', '-o: its bytes')
	T.eq(slurp('2-name'), 'you asked for /x/name\n', '-o: names that repeat get the URL number')
	T.eq(slurp('3-name'), 'you asked for /y/name\n', '-o: the other one')
	T.eq(slurp('index.html'), 'you asked for /\n', '-o: index.html for /')
	T.eq(H.run('ls -A ' .. dir .. ' | wc -l'), '4\n', '-o: nothing else left in the directory')
	_, status = H.run(run .. ' examples/fetch.lua -o ' .. dir .. '/missing/dir ' .. base .. '/a')
	T.eq(status, 1, '-o into a missing directory: a failure')
	H.rmdir(dir)
end)

T.run('luasocket_http.lua', function()
	local urls = {base .. '/one', base .. '/bytes/70000', base .. '/three', base .. '/bytes/3'}
	local out, status = H.run(run .. ' examples/luasocket_http.lua ' .. table.concat(urls, ' '))
	T.eq(status, 0, 'exit status\n' .. out)
	local want = {
		'200 ' .. #'you asked for /one\n' .. ' ' .. urls[1],
		'200 70000 ' .. urls[2],
		'200 ' .. #'you asked for /three\n' .. ' ' .. urls[3],
		'200 3 ' .. urls[4],
	}
	T.eq(out, table.concat(want, '\n') .. '\n', 'one line per page, in order')
end)

T.run('socketloop.http over LuaSocket sockets', function()
	local socket = require'socket'
	local finished, right = 0, 0
	for i = 1, 3 do
		loop.newthread(function()
			local out = {}
			local ok, code = http.request{url = base .. '/ls/' .. i, sink = function(c) out[#out + 1] = c return 1 end,
				create = function() return socket.tcp4() end}
			if ok and code == 200 and table.concat(out) == 'you asked for /ls/' .. i .. '\n' then
				right = right + 1
			end
			finished = finished + 1
		end)
	end
	for _ = 1, 500 do
		if finished == 3 then break end
		loop.sleep(0.01)
	end
	T.eq(right, 3, 'LuaSocket objects from create, wrapped by the loop')
end)

T.run('fetch.lua keeps connections alive', function()
	local function connections()
		local out = {}
		http.request{url = base .. '/stats', keepalive = false, sink = function(c) out[#out + 1] = c return 1 end}
		return tonumber(table.concat(out):match('connections=(%d+)'))
	end
	local before = connections()
	local out, status = H.run(run .. ' examples/fetch.lua -c 1 -n 20 ' .. base .. '/same')
	T.eq(status, 0, 'exit status')
	T.ok(out:find('total: 20 fetches, 0 failed', 1, true), 'totals: ' .. out)
	-- one connection for the 20 fetches, one for the stats request itself
	T.eq(connections(), before + 2, 'one connection for 20 sequential fetches')
end)

T.run('http_server.lua and HTTP/1.0 keep-alive', function()
	local hostport = base:match('^http://(.*)$')
	local ip, port = hostport:match('^(.*):(%d+)$')
	local skt = assert(loop.connect(ip, tonumber(port)))
	skt:settimeout(10)
	-- asked to keep the connection, it says it does, and does
	for i = 1, 2 do
		skt:send('GET /k' .. i .. ' HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n')
		local status, fields = H.read_request(skt)
		T.eq(status, 'HTTP/1.1 200 OK', 'HTTP/1.0 keep-alive: status ' .. i)
		T.eq(fields and fields.connection, 'keep-alive', 'HTTP/1.0 keep-alive: answered ' .. i)
		T.eq(skt:receive(tonumber(fields['content-length'])), 'you asked for /k' .. i .. '\n', 'body ' .. i)
	end
	-- not asked: it closes
	skt:send('GET /k3 HTTP/1.0\r\n\r\n')
	local status, fields = H.read_request(skt)
	T.eq(fields and fields.connection, 'close', 'plain HTTP/1.0: Connection: close')
	skt:receive(tonumber(fields['content-length']))
	T.eq(select(2, skt:receive(1)), 'closed', 'and closed')
	skt:close()
	-- ab -k speaks HTTP/1.0 with Keep-Alive and waits for each response to end: it finishes
	-- its count at once instead of waiting for the server's idle timeout (30 s)
	local out, code = H.run('timeout 20 ab -k -n 2000 -c 8 ' .. base .. '/bytes/100 2>&1')
	T.eq(code, 0, 'ab -k finished (exit status)\n' .. out)
	T.ok(out:find('Complete requests:%s+2000\n'), 'ab: 2000 requests complete')
	T.ok(out:find('Failed requests:%s+0\n'), 'ab: none failed (each response checked)')
	T.ok(out:find('Non%-2xx responses') == nil, 'ab: all 2xx')
	T.ok(out:find('Keep%-Alive requests:%s+2000\n'), 'ab: all kept alive')
	T.ok(out:find('Document Length:%s+100 bytes'), 'ab: 100-byte bodies')
end)

H.stop(server)
T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
