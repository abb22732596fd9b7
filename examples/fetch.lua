-- Fetches URLs concurrently with socketloop.http and reports how it went.
--
--   socketloop examples/fetch.lua [-c N] [-n N] [-t SECONDS] URL...
--
--   -c N   at most N fetches at once (default: all of them)
--   -n N   fetch each URL N times (default 1)
--   -t S   timeout of each fetch, in seconds (default 30)
--
-- Prints one line per URL, in the order given: status (or "error"), bytes of one body,
-- mean and slowest milliseconds, fetches, URL (or the error); then a line of totals.
-- On a terminal, a progress line counts the fetches as they finish; piped, only the
-- plain lines are printed. Exits 1 if any fetch failed.

local loop = require'socketloop'
local http = require'socketloop.http'

local function usage(msg)
	if msg then io.stderr:write('fetch: ', msg, '\n') end
	io.stderr:write('usage: fetch.lua [-c N] [-n N] [-t SECONDS] URL...\n')
	os.exit(2)
end

local args = {...}
local concurrency, repeats, timeout = nil, 1, 30
local urls = {}
local i = 1
while i <= #args do
	local a = args[i]
	if a == '-c' or a == '-n' or a == '-t' then
		local v = tonumber(args[i + 1])
		if not v or v <= 0 then usage('option ' .. a .. ' needs a positive number') end
		if a == '-c' then concurrency = math.floor(v)
		elseif a == '-n' then repeats = math.floor(v)
		else timeout = v end
		i = i + 2
	elseif a:sub(1, 1) == '-' then
		usage('unknown option ' .. a)
	else
		urls[#urls + 1] = a
		i = i + 1
	end
end
if #urls == 0 then usage() end

-- Whether stdout is a terminal, through LuaJIT's ffi (false if ffi is not there).
local function stdout_is_terminal()
	local ok, ffi = pcall(require, 'ffi')
	if not ok then return false end
	pcall(ffi.cdef, 'int isatty(int fd);')
	local ok2, tty = pcall(function() return ffi.C.isatty(1) == 1 end)
	return ok2 and tty
end
local progress = stdout_is_terminal()

-- The jobs: every URL `repeats` times, interleaved so repeats of one URL spread out.
local jobs = {}
for _ = 1, repeats do
	for u = 1, #urls do jobs[#jobs + 1] = u end
end
local njobs = #jobs
concurrency = math.min(concurrency or njobs, njobs)

local per = {}
for u = 1, #urls do
	per[u] = {fetches = 0, failed = 0, ms = 0, slowest = 0, codes = {}}
end
local done, failed, bytes = 0, 0, 0
local last_draw = -1

local function draw(final)
	if not progress then return end
	local t = loop.now()
	if not final and t - last_draw < 0.05 then return end
	last_draw = t
	if final then
		io.stdout:write('\r\27[K')
	else
		io.stdout:write(('\r%d/%d fetched, %d failed'):format(done, njobs, failed))
	end
	io.stdout:flush()
end

local function fetch(u)
	local r = per[u]
	local t0 = loop.now()
	local body, code = http.request{
		url = urls[u],
		sink = function(chunk)
			if chunk then r.size = (r.size or 0) + #chunk end
			return 1
		end,
		timeout = {total = timeout},
	}
	local ms = (loop.now() - t0) * 1000
	r.fetches = r.fetches + 1
	if body then
		r.codes[code] = (r.codes[code] or 0) + 1
		r.bytes = r.size or 0
		bytes = bytes + r.bytes
	else
		r.failed = r.failed + 1
		r.err = code
		failed = failed + 1
	end
	r.size = nil
	r.ms = r.ms + ms
	if ms > r.slowest then r.slowest = ms end
	done = done + 1
	draw(false)
end

local started = loop.now()
local next_job, running = 1, 0
for _ = 1, concurrency do
	running = running + 1
	loop.newthread(function()
		while next_job <= njobs do
			local u = jobs[next_job]
			next_job = next_job + 1
			fetch(u)
		end
		running = running - 1
	end)
end
loop.start()
local elapsed = loop.now() - started
draw(true)

-- The status column: "200", or every code seen with its count ("200x3,404x1").
local function status(r)
	local list = {}
	for code, n in pairs(r.codes) do list[#list + 1] = {code, n} end
	table.sort(list, function(a, b) return a[1] < b[1] end)
	if #list == 1 and r.failed == 0 then return tostring(list[1][1]) end
	local parts = {}
	for _, e in ipairs(list) do parts[#parts + 1] = e[1] .. 'x' .. e[2] end
	if r.failed > 0 then parts[#parts + 1] = 'errorx' .. r.failed end
	if #parts == 1 and r.failed > 0 then return 'error' end
	return table.concat(parts, ',')
end

local out = {}
for u, url in ipairs(urls) do
	local r = per[u]
	local line = ('%-8s %10s B %9.1f ms %9.1f max %4d x  %s'):format(
		status(r), r.bytes and tostring(r.bytes) or '-', r.ms / math.max(r.fetches, 1),
		r.slowest, r.fetches, url)
	if r.err then line = line .. '  (' .. r.err .. ')' end
	out[#out + 1] = line
end
out[#out + 1] = ('total: %d fetches, %d failed, %d bytes in %.3f s, %.1f fetches/s')
	:format(done, failed, bytes, elapsed, done / math.max(elapsed, 1e-9))
io.stdout:write(table.concat(out, '\n'), '\n')
io.stdout:flush()
if running ~= 0 or failed > 0 then os.exit(1) end
