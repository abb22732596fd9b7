-- 200 concurrent fetches of distinct paths from examples/http_server.lua (in this
-- process), every body checked; then 200 more, which take the idle connections the
-- pool kept (MAXIDLE of them) and connect for the rest.
local loop = require'socketloop'
local http = require'socketloop.http'
local T = require'testlib'
local example = dofile('examples/http_server.lua')

local N = 200

-- What the example server sends for path number i: text for most, /bytes/N for some.
local function path_and_body(round, i)
	if i % 10 == 0 then
		local n = 1000 * i + round
		return '/bytes/' .. n, ('0123456789'):rep(math.ceil(n / 10)):sub(1, n)
	end
	local path = ('/round%d/page%d'):format(round, i)
	return path, 'you asked for ' .. path .. '\n'
end

local function fetch_all(base, round)
	local finished, right = 0, 0
	for i = 1, N do
		loop.newthread(function()
			local path, want = path_and_body(round, i)
			local body, code = http.request(base .. path)
			if T.eq(code, 200, 'code of ' .. path) and T.eq(body, want, 'body of ' .. path) then
				right = right + 1
			end
			finished = finished + 1
		end)
	end
	for _ = 1, 3000 do
		if finished == N then break end
		loop.sleep(0.01)
	end
	T.eq(finished, N, 'round ' .. round .. ': all fetches finished')
	T.eq(right, N, 'round ' .. round .. ': right bodies')
end

T.run('200 concurrent fetches, twice', function()
	local server, stats = assert(example.start('127.0.0.1', 0))
	local _, port = server:getsockname()
	local base = 'http://127.0.0.1:' .. port
	fetch_all(base, 1)
	T.eq(stats().connections, N, 'round 1: a connection per concurrent fetch')
	T.eq(http.idlecount(), http.MAXIDLE, 'round 1: MAXIDLE connections kept')
	fetch_all(base, 2)
	T.eq(stats().connections, N + N - http.MAXIDLE, 'round 2: the kept ones were reused')
	T.eq(stats().requests, 2 * N, 'requests served')
	http.closeidle()
	server:close()
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
