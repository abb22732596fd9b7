-- The socketloop.http client of benches/http_client_cpu.sh: N keep-alive GETs of URL over
-- THREADS loop threads, each body checked against the first. Prints "requests
-- cpu_seconds wall_seconds" (os.clock: this process's user + system time).
--
--   socketloop benches/http_client_cpu.lua URL N THREADS
local loop = require'socketloop'
local http = require'socketloop.http'
local ltn12 = require'socketloop.ltn12'

local url, n, threads = arg[1], tonumber(arg[2]), tonumber(arg[3] or '50')
assert(url and n and threads, 'usage: http_client_cpu.lua URL N THREADS')

local failures, first, next_request = 0, nil, 1
local c0, t0 = os.clock(), loop.now()
for _ = 1, threads do
	loop.newthread(function()
		while next_request <= n do
			next_request = next_request + 1
			local body, code = http.request(url)
			if code ~= 200 then
				failures = failures + 1
			else
				first = first or body
				if body ~= first then failures = failures + 1 end
			end
		end
	end)
end
loop.start()
local cpu, wall = os.clock() - c0, loop.now() - t0
http.closeidle()
if failures > 0 then
	io.stderr:write(failures, ' requests failed\n')
	os.exit(1)
end
print(n, cpu, wall)
