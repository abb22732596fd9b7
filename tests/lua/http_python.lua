-- socketloop.http against a server nobody here wrote: Python's http.server, serving a
-- temporary directory of files we made, as HTTP/1.0 (a connection per request) and as
-- HTTP/1.1 (kept alive).
local loop = require'socketloop'
local http = require'socketloop.http'
local ltn12 = require'socketloop.ltn12'
local T = require'testlib'
local H = require'http_support'

local dir = H.tmpdir()
local small = 'hello from python\n'
local parts = {}
for i = 1, 30000 do parts[i] = ('%09d\n'):format(i) end
local big = table.concat(parts) -- 300,000 bytes
H.write(dir .. '/small.txt', small)
H.write(dir .. '/big.txt', big)
os.execute('mkdir ' .. H.quote(dir .. '/sub'))
H.write(dir .. '/sub/index.html', '<p>index</p>\n')

local py10, base10 = H.python_server(dir, 'HTTP/1.0')
local py11, base11 = H.python_server(dir, 'HTTP/1.1')

T.run('HTTP/1.0 server', function()
	local body, code, headers, status = http.request(base10 .. 'small.txt')
	T.eq(code, 200, 'code')
	T.eq(body, small, 'small body')
	T.eq(headers['content-length'], tostring(#small), 'content-length')
	T.ok(status:find('^HTTP/1%.0 200'), 'status line: ' .. tostring(status))
	T.eq(http.request(base10 .. 'big.txt'), big, 'big body')
	body, code = http.request(base10 .. 'missing.txt')
	T.eq(code, 404, 'missing file')
	T.ok(#body > 0, 'error page')
	local out = {}
	local ok
	ok, code, headers = http.request{url = base10 .. 'small.txt', method = 'HEAD', sink = ltn12.sink.table(out)}
	T.eq(ok, 1, 'HEAD')
	T.eq(code, 200, 'HEAD code')
	T.eq(headers['content-length'], tostring(#small), 'HEAD content-length')
	T.eq(table.concat(out), '', 'HEAD has no body')
	-- Python answers a directory without its slash with a 301 to the slash
	body, code, headers = http.request(base10 .. 'sub')
	T.eq(code, 200, 'redirect followed')
	T.eq(body, '<p>index</p>\n', 'redirect target')
	T.eq(headers.location, '/sub/', 'location of the redirect')
	local _, c501 = http.request(base10 .. 'small.txt', 'a=1')
	T.eq(c501, 501, 'POST is not implemented by http.server')
	-- a sink to a file
	local path = dir .. '/copy.txt'
	ok = http.request{url = base10 .. 'big.txt', sink = ltn12.sink.file(io.open(path, 'wb'))}
	T.eq(ok, 1, 'file sink')
	local f = assert(io.open(path, 'rb'))
	T.eq(f:read('*a'), big, 'file sink content')
	f:close()
	T.eq(http.idlecount(), 0, 'HTTP/1.0 connections are not kept')
	-- many at once
	local finished, right = 0, 0
	for i = 1, 20 do
		loop.newthread(function()
			local name = i % 2 == 0 and 'big.txt' or 'small.txt'
			if http.request(base10 .. name) == (i % 2 == 0 and big or small) then right = right + 1 end
			finished = finished + 1
		end)
	end
	for _ = 1, 3000 do
		if finished == 20 then break end
		loop.sleep(0.01)
	end
	T.eq(right, 20, 'concurrent fetches from python')
end)

T.run('HTTP/1.1 server, kept alive', function()
	local port = tonumber(base11:match(':(%d+)/'))
	for i = 1, 5 do
		T.eq(http.request(base11 .. 'small.txt'), small, 'keep-alive body ' .. i)
		T.eq(select(2, http.idlecount('127.0.0.1', port)), 1, 'kept alive ' .. i)
	end
	T.eq(http.request(base11 .. 'big.txt'), big, 'big body kept alive')
	local _, code = http.request(base11 .. 'nothing-here')
	T.eq(code, 404, '404 kept alive')
	T.eq(http.request(base11 .. 'small.txt'), small, 'after the 404')
	http.closeidle()
end)

H.stop(py10)
H.stop(py11)
H.rmdir(dir)
T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
