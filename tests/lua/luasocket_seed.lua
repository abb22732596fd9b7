-- The luapower socketloop documentation's example, verbatim but for the URL: Debian's
-- socket.http with loop.wrap(socket.tcp()) as its socket, getpage in 40 loop threads at
-- once against Python's http.server, every body checked.
local H = require'http_support'
local T = require'testlib'

local dir = H.tmpdir()
local pages = {}
for i = 1, 40 do
	pages[i] = ('page %d\n'):format(i) .. ('%d'):format(i):rep(1000 * i)
	H.write(('%s/page%d.txt'):format(dir, i), pages[i])
end
local py, base = H.python_server(dir, 'HTTP/1.0', 128)

-- The example, from here to its end.
local loop = require'socketloop'
local http = require'socket.http'
local function getpage(url)
   local t = {}
   local ok, code, headers = http.request{
      url = url,
      sink = ltn12.sink.table(t),
      create = function()
         return loop.wrap(socket.try(socket.tcp()))
      end,
   }
   assert(ok, code)
   return table.concat(t), headers, code
end
-- The example ends here.

T.run('the seed example: 40 pages at once', function()
	local done, running, most = 0, 0, 0
	for i = 1, 40 do
		loop.newthread(function()
			running = running + 1
			if running > most then most = running end
			local body, headers, code = getpage(('%spage%d.txt'):format(base, i))
			running = running - 1
			T.eq(code, 200, 'code of page ' .. i)
			T.eq(headers['content-length'], tostring(#pages[i]), 'content-length of page ' .. i)
			T.ok(body == pages[i], 'body of page ' .. i)
			done = done + 1
		end)
	end
	T.ok(running > 1, 'the threads wait at once: ' .. running .. ' waiting after starting them all')
	for _ = 1, 6000 do
		if done == 40 then break end
		loop.sleep(0.01)
	end
	T.eq(done, 40, 'pages fetched')
	T.ok(most > 1, 'several requests at once')
end)

T.run('socket.http errors come back as nil, err (socket.try inside protect)', function()
	local ok, err = http.request{
		url = base .. 'page1.txt',
		create = function() return loop.wrap(socket.try(socket.tcp())) end,
		port = 1, -- nothing listens there
	}
	T.eq(ok, nil, 'refused connection: nil')
	T.eq(err, 'connection refused', 'and the error')
	local raised = pcall(http.request, {url = base, create = function() error('not a try error') end})
	T.eq(raised, false, 'other errors propagate')
end)

H.stop(py)
H.rmdir(dir)
T.finish()
