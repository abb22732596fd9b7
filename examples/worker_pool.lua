-- A pool of worker threads fed through a bounded queue: fetches URLs with
-- socketloop.http, at most N at once, each fetch under its own deadline.
--
--   socketloop examples/worker_pool.lua [-w N] [-t SECONDS] URL...
--
--   -w N   worker threads (default 4)
--   -t S   deadline of each URL, in seconds, for the whole exchange: connect, request,
--          response and body (default 10)
--
-- Prints one line per URL as it finishes: status (or "error"), bytes, milliseconds, URL
-- (or the error); then a line of totals. Exits 1 if any fetch failed.
--
-- How it works: the main thread pushes the URLs into a queue of capacity 2*N (a push
-- waits while the queue is full, so a long list never sits in memory at once) and
-- closes it; each worker pops URLs until the queue is closed and empty, and wraps each
-- fetch in loop.timeout, which cancels whatever wait the fetch is in once its deadline
-- passes (the request then fails with 'timeout'). The main thread joins the workers.
-- Runs under the runner and under stock luajit.

local loop = require'socketloop'
local http = require'socketloop.http'

local function usage(msg)
	if msg then io.stderr:write('worker_pool: ', msg, '\n') end
	io.stderr:write('usage: worker_pool.lua [-w N] [-t SECONDS] URL...\n')
	os.exit(2)
end

local args = {...}
local nworkers, deadline = 4, 10
local urls = {}
local i = 1
while i <= #args do
	local a = args[i]
	if a == '-w' or a == '-t' then
		local v = tonumber(args[i + 1])
		if not v or v <= 0 then usage('option ' .. a .. ' needs a positive number') end
		if a == '-w' then nworkers = math.floor(v) else deadline = v end
		i = i + 2
	elseif a:sub(1, 1) == '-' then
		usage('unknown option ' .. a)
	else
		urls[#urls + 1] = a
		i = i + 1
	end
end
if #urls == 0 then usage() end

local jobs = loop.queue(2 * nworkers)
local failed, bytes = 0, 0

-- One fetch, under the deadline: its body, status code, or nil and why.
local function fetch(url)
	return loop.timeout(deadline, function()
		local body, code = http.request(url)
		return body, code
	end)
end

local function worker()
	while true do
		local url = jobs:pop()
		if not url then return end -- closed and empty: no more work
		local started = loop.now()
		local body, code = fetch(url)
		local ms = (loop.now() - started) * 1000
		if body then
			bytes = bytes + #body
			io.stdout:write(('%-6s %9d B %8.1f ms  %s\n'):format(code, #body, ms, url))
		else
			failed = failed + 1
			io.stdout:write(('%-6s %9s   %8.1f ms  %s (%s)\n'):format('error', '-', ms, url, tostring(code)))
		end
		io.stdout:flush()
	end
end

-- The main loop thread: feeds the queue, then waits for the workers. (Under the runner
-- the main chunk is a loop thread already; under stock luajit it is not, and the loop
-- runs in loop.start() below.)
loop.newthread(function()
	local threads = {}
	for w = 1, nworkers do threads[w] = loop.newthread(worker) end
	local started = loop.now()
	for _, url in ipairs(urls) do jobs:push(url) end
	jobs:close()
	for _, t in ipairs(threads) do
		local ok, err = loop.join(t)
		if not ok then error(err, 0) end
	end
	http.closeidle()
	io.stdout:write(('total: %d URLs, %d failed, %d bytes in %.3f s\n')
		:format(#urls, failed, bytes, loop.now() - started))
end)
loop.start()
if failed > 0 then os.exit(1) end
