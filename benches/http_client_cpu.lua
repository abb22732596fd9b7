-- The socketloop.http client of benches/http_client_cpu.sh: N keep-alive GETs of URL over
-- THREADS loop threads, each body checked against the first. Prints "requests
-- cpu_seconds wall_seconds" (os.clock: this process's user + system time). With
-- `garbage`, it makes 2,000 requests first, then the N with the collector stopped, and
-- prints the Lua heap's growth over them per request instead ("garbage_bytes_per_request
-- B"): what the collector would have had to reclaim.
--
--   socketloop benches/http_client_cpu.lua URL N THREADS [garbage]
local loop = require'socketloop'
local http = require'socketloop.http'

local url, n, threads, mode = arg[1], tonumber(arg[2]), tonumber(arg[3] or '50'), arg[4]
assert(url and n and threads and (mode == nil or mode == 'garbage'),
	'usage: http_client_cpu.lua URL N THREADS [garbage]')

local failures, first = 0, nil

-- Runs `count` GETs over the threads, to the end.
local function run(count)
	local next_request = 1
	for _ = 1, threads do
		loop.newthread(function()
			while next_request <= count do
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
end

local result
if mode == 'garbage' then
	run(2000)
	collectgarbage()
	collectgarbage('stop')
	local before = collectgarbage('count')
	run(n)
	result = ('garbage_bytes_per_request %.0f'):format((collectgarbage('count') - before) * 1024 / n)
	collectgarbage('restart')
else
	local c0, t0 = os.clock(), loop.now()
	run(n)
	result = ('%d %s %s'):format(n, os.clock() - c0, loop.now() - t0)
end
http.closeidle()
if failures > 0 then
	io.stderr:write(failures, ' requests failed\n')
	os.exit(1)
end
print(result)
