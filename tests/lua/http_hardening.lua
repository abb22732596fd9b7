-- socketloop.http against request splitting and real-world responses: URLs and header
-- fields that would inject into the request refused, a Location with a raw space
-- encoded as curl does, heads of 1,000+ fields and long lines accepted and a 10 MiB
-- head refused, the final URL and redirect count, repeated Set-Cookie fields unjoined.
local loop = require'socketloop'
local http = require'socketloop.http'
local ltn12 = require'socketloop.ltn12'
local T = require'testlib'
local H = require'http_support'

-- A scripted server: `routes[path](skt, line, fields)` answers (true: close after). Every
-- request line it saw is kept in `seen`.
local routes, seen = {}, {}
local server, counts, base

local function run(name, body)
	T.run(name, function()
		server, counts, base = H.scripted(function(skt)
			for _ = 1, 1000 do
				local line, fields = H.read_request(skt)
				if not line then break end
				seen[#seen + 1] = line
				local path = line:match('^%u+ (%S+)') or ''
				local route = routes[path:match('^[^?]*')] or routes[path:match('^/[^/?]*')]
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

run('request splitting refused', function()
	routes['/'] = function(skt) skt:send(H.response(200, 'ok')) end
	for _, bad in ipairs{'/a\r\nX-Injected: yes', '/a?q=\nX-Injected: yes', '/a\0b', '/a\tb', '/\127'} do
		local ok, err = http.request(base .. bad)
		T.eq(ok, nil, 'control byte in ' .. bad:gsub('%c', '?'))
		T.ok(tostring(err):find('invalid url', 1, true) and tostring(err):find('control character', 1, true)
			and not tostring(err):find('[\r\n]'), 'message: ' .. tostring(err))
	end
	T.eq(#seen, 0, 'nothing was sent for them')
	T.raises("invalid header name 'a b'", http.request, {url = base .. '/', headers = {['a b'] = '1'}})
	T.raises("invalid header name 'x:y'", http.request, {url = base .. '/', headers = {['x:y'] = '1'}})
	T.raises("invalid header name 'x?'", http.request, {url = base .. '/', headers = {['x\n'] = '1'}})
	T.raises("invalid header name ''", http.request, {url = base .. '/', headers = {[''] = '1'}})
	T.raises("invalid value for header 'x'", http.request, {url = base .. '/', headers = {x = 'a\r\nX-Injected: yes'}})
	T.raises("invalid value for header 'x'", http.request, {url = base .. '/', headers = {x = 'a\nb'}})
	T.raises("invalid value for header 'x'", http.request, {url = base .. '/', headers = {x = 'a\0b'}})
	T.eq(#seen, 0, 'nothing was sent for them either')
	-- what is allowed goes through
	local _, code = http.request{url = base .. '/', headers = {["x-a!#$%&'*+.^_`|~"] = 'tab\tand "quotes" é'}}
	T.eq(code, 200, 'token characters and a value with a tab and UTF-8')
end)

run('spaces and non-ASCII bytes percent-encoded, once', function()
	routes['/files/a%20b.txt'] = function(skt) skt:send(H.response(200, 'the file')) end
	routes['/moved'] = function(skt)
		-- as production web servers send it: the Location as it was written, with a raw space
		skt:send(H.response(301, '', 'Location: /files/a b.txt\r\n'))
	end
	seen = {}
	local body, code, _, _, url, redirects = http.request(base .. '/moved')
	T.eq(code, 200, 'Location with a space followed')
	T.eq(body, 'the file', 'and fetched')
	T.eq(seen[2], 'GET /files/a%20b.txt HTTP/1.1', 'request line after the redirect')
	T.eq(url, base .. '/files/a%20b.txt', 'final url')
	T.eq(redirects, 1, 'one redirect')
	routes['/u'] = function(skt, line) skt:send(H.response(200, line)) end
	T.eq(http.request(base .. '/u/é x?q=ü y'), 'GET /u/%C3%A9%20x?q=%C3%BC%20y HTTP/1.1', 'caller URL encoded')
	T.eq(http.request(base .. '/u/%C3%A9%20x?q=%2F'), 'GET /u/%C3%A9%20x?q=%2F HTTP/1.1', 'not encoded twice')
	routes['/moved2'] = function(skt)
		skt:send(H.response(302, '', 'Location: /u/%41 b?x=%zz é\r\n'))
	end
	T.eq(http.request(base .. '/moved2'), 'GET /u/%41%20b?x=%zz%20%C3%A9 HTTP/1.1', 'mixed Location')
end)

-- A head of `n` fields of `size` bytes each (beside the status line).
local function big_head(n, size)
	local parts = {'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n'}
	local filler = ('v'):rep(size)
	for i = 1, n do parts[#parts + 1] = ('X-Field-%d: %s\r\n'):format(i, filler) end
	parts[#parts + 1] = '\r\nok'
	return table.concat(parts)
end

run('big heads', function()
	routes['/fields'] = function(skt) skt:send(big_head(1500, 10)) end
	local body, code, headers = http.request(base .. '/fields')
	T.eq(code, 200, '1,500 header fields accepted')
	T.eq(body, 'ok', 'body after them')
	T.eq(headers['x-field-1500'], ('v'):rep(10), 'the last field')
	routes['/longline'] = function(skt) skt:send(big_head(3, 100 * 1024)) end
	body, code, headers = http.request(base .. '/longline')
	T.eq(code, 200, '3 fields of 100 KiB accepted')
	T.eq(#headers['x-field-3'], 100 * 1024, 'a 100 KiB field')
	T.eq(body, 'ok', 'body after them')
	routes['/huge'] = function(skt)
		-- 10 MiB of head: 1,000 lines of 10 KiB, sent until the client stops reading
		skt:send('HTTP/1.1 200 OK\r\n')
		local line = 'X-Big: ' .. ('b'):rep(10 * 1024) .. '\r\n'
		for _ = 1, 1000 do
			if not skt:send(line) then break end
		end
		return true
	end
	local ok, err = http.request(base .. '/huge')
	T.eq(ok, nil, 'a 10 MiB head is refused')
	T.eq(err, 'malformed response (head over 1048576 bytes)', 'message')
	ok, err = http.request{url = base .. '/fields', maxhead = 1000}
	T.eq(err, 'malformed response (head over 1000 bytes)', 'maxhead=')
	T.raises("field 'maxhead'", http.request, {url = base .. '/fields', maxhead = -1})
end)

run('final URL and redirects followed', function()
	for i = 1, 3 do
		routes['/hop' .. i] = function(skt)
			local next_hop = i < 3 and '/hop' .. (i + 1) or '/end?x=1'
			skt:send(H.response(302, '', 'Location: ' .. next_hop .. '\r\n'))
		end
	end
	routes['/end'] = function(skt) skt:send(H.response(200, 'end')) end
	local ok, code, headers, status, url, redirects = http.request{url = base .. '/hop1',
		sink = ltn12.sink.null()}
	T.eq(ok, 1, 'table form')
	T.eq(code, 200, 'code')
	T.eq(status, 'HTTP/1.1 200 X', 'status')
	T.eq(headers.location, '/end?x=1', 'last Location (LuaSocket)')
	T.eq(url, base .. '/end?x=1', 'final URL after three redirects')
	T.eq(redirects, 3, 'three redirects')
	local body
	body, code, headers, status, url, redirects = http.request(base .. '/end')
	T.eq(url, base .. '/end', 'final URL without redirects')
	T.eq(redirects, 0, 'no redirects')
	ok, code, headers, status, url, redirects = http.request{url = base .. '/hop1', redirect = false}
	T.eq(code, 302, 'redirect = false')
	T.eq(url, base .. '/hop1', 'final URL then')
	T.eq(redirects, 0, 'none followed')
end)

run('repeated fields unjoined', function()
	routes['/cookies'] = function(skt)
		skt:send(H.response(200, '', 'Set-Cookie: a=1; Expires=Wed, 09 Jun 2100 10:18:14 GMT\r\n'
			.. 'Set-Cookie: b=2\r\nX-One: 1\r\nset-cookie: c=3\r\n'))
	end
	local _, _, headers = http.request(base .. '/cookies')
	T.eq(headers['set-cookie'], 'a=1; Expires=Wed, 09 Jun 2100 10:18:14 GMT, b=2, c=3', 'joined, as LuaSocket')
	local list = http.values(headers, 'Set-Cookie')
	T.eq(#list, 3, 'three values')
	T.eq(list[1], 'a=1; Expires=Wed, 09 Jun 2100 10:18:14 GMT', 'the first, whole')
	T.eq(list[3], 'c=3', 'the last')
	T.ok(T.same(http.values(headers, 'x-one'), {'1'}), 'a field that came once')
	T.ok(T.same(http.values(headers, 'x-none'), {}), 'a field that did not come')
	T.raises("bad argument #1 to 'values'", http.values, nil, 'x')
end)

T.finish()
