-- Fetches URLs concurrently with socketloop.http and reports how it went.
--
--   socketloop examples/fetch.lua [-c N] [-n N] [-t SECONDS] [-f] [-o DIR] URL...
--
--   -c N   at most N fetches at once (default: all of them)
--   -n N   fetch each URL N times (default 1)
--   -t S   timeout of each fetch, in seconds (default 30)
--   -f     an HTTP status of 400 or more counts as a failure (as curl -f)
--   -o DIR save each URL's body in DIR, named after the URL's last path segment
--          ("index.html" for none; "N-name" for the Nth URL when names repeat)
--
-- A URL without a scheme is taken as http ("host:8080/x" is "http://host:8080/x").
-- Prints a header line, then one line per URL, in the order given: status (or "error"),
-- bytes of one body, mean and slowest milliseconds, fetches, URL (or the error); then a
-- line of totals. On a terminal, a progress line counts the fetches as they finish;
-- piped, only the plain lines are printed. Exits 0 when every fetch succeeded, 1 when any
-- failed (could not connect, broke off, or with -f had a status of 400 or more), 2 on
-- bad usage.

local loop = require'socketloop'
local http = require'socketloop.http'

local function usage(msg)
	if msg then io.stderr:write('fetch: ', msg, '\n') end
	io.stderr:write('usage: fetch.lua [-c N] [-n N] [-t SECONDS] [-f] [-o DIR] URL...\n')
	os.exit(2)
end

local args = {...}
local concurrency, repeats, timeout = nil, 1, 30
local fail_on_status, outdir = false, nil
local urls = {}
local i = 1
while i <= #args do
	local a = args[i]
	if a == '-f' then
		fail_on_status = true
		i = i + 1
	elseif a == '-o' then
		outdir = args[i + 1]
		if not outdir or outdir == '' then usage('option -o needs a directory') end
		i = i + 2
	elseif a == '-c' or a == '-n' or a == '-t' then
		local v = tonumber(args[i + 1])
		if not v or v <= 0 then usage('option ' .. a .. ' needs a positive number') end
		if a == '-c' then concurrency = math.floor(v)
		elseif a == '-n' then repeats = math.floor(v)
		else timeout = v end
		i = i + 2
	elseif a:sub(1, 1) == '-' then
		usage('unknown option ' .. a)
	else
		if not a:find('^%a[%w+.-]*://') then a = 'http://' .. a end
		urls[#urls + 1] = a
		i = i + 1
	end
end
if #urls == 0 then usage() end

-- With -o: the file each URL's body goes to.
local files = {}
if outdir then
	local count = {}
	for u, url in ipairs(urls) do
		local path = url:match('^%a[%w+.-]*://[^/?#]*([^?#]*)') or ''
		local name = path:match('([^/]*)$')
		if name == '' or name == '.' or name == '..' then name = 'index.html' end
		files[u] = name
		count[name] = (count[name] or 0) + 1
	end
	for u, name in ipairs(files) do
		if count[name] > 1 then files[u] = u .. '-' .. name end
		files[u] = outdir .. '/' .. files[u]
	end
end

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

local function fetch(u, serial)
	local r = per[u]
	local t0 = loop.now()
	-- With -o, the body goes to a file of its own, renamed to the URL's once complete (the
	-- same URL fetched at once by several threads writes several files).
	local file, partname, ferr
	if files[u] then
		partname = ('%s.part%d'):format(files[u], serial)
		file, ferr = io.open(partname, 'wb')
	end
	local body, code
	if ferr then
		body, code = nil, ferr
	else
		local size = 0
		body, code = http.request{
			url = urls[u],
			sink = function(chunk)
				if chunk then
					size = size + #chunk
					if file then
						local ok, err = file:write(chunk)
						if not ok then return nil, err end
					end
				end
				return 1
			end,
			timeout = {total = timeout},
		}
		r.size = size
	end
	if file then
		file:close()
		if body then
			local ok, err = os.rename(partname, files[u])
			if not ok then body, code = nil, err end
		else
			os.remove(partname)
		end
	end
	local ms = (loop.now() - t0) * 1000
	r.fetches = r.fetches + 1
	if body and fail_on_status and code >= 400 then
		r.codes[code] = (r.codes[code] or 0) + 1
		r.bytes = r.size or 0
		bytes = bytes + r.bytes
		r.failed_status = (r.failed_status or 0) + 1
		failed = failed + 1
	elseif body then
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
			local u, serial = jobs[next_job], next_job
			next_job = next_job + 1
			fetch(u, serial)
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

local out = {('%-8s %12s %12s %13s %6s  %s'):format('status', 'bytes', 'mean', 'slowest', 'count', 'url')}
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
