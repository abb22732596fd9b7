-- Helpers shared by the test scripts that use sockets (a module, not a test script):
-- connected pairs, bounded waits, threads whose results can be polled, a ticking thread,
-- line servers and clients, raw sends to a server, plain (non-loop) coroutines, and the
-- end-of-script checks of the socket scripts.
local loop = require'socketloop'
local T = require'testlib'

local N = {}

-- A connected pair on loopback: client, accepted server side, and the port it was
-- accepted on. Both have a timeout of 10 s, so a failing check cannot hang the script.
-- With `small`, fixed small buffers (no autotuning): a big send has to wait for the
-- reader.
function N.pair(small)
	local srv = assert(loop.tcp('127.0.0.1', 0))
	assert(srv:listen())
	local _, port = srv:getsockname()
	local c = assert(loop.connect('127.0.0.1', port))
	local s = assert(srv:accept())
	srv:close()
	c:settimeout(10)
	s:settimeout(10)
	if small then
		c:setoption('send-buffer-size', 65536)
		s:setoption('recv-buffer-size', 65536)
	end
	return c, s, port
end

-- Waits (bounded) until cond() holds, letting the other threads run: at most `tries`
-- sleeps (default 5000) of `step` seconds (default 0.001). Returns true, or fails a
-- check and returns false.
function N.await(cond, what, tries, step)
	step = step or 0.001
	for _ = 1, tries or 5000 do
		if cond() then return true end
		loop.sleep(step)
	end
	return T.ok(false, 'gave up waiting for ' .. what)
end

-- Runs f in a new loop thread; returns a function giving f's results (a table) once it
-- returned (nil before).
function N.spawn(f, ...)
	local res
	loop.newthread(function(...) res = {f(...)} end, ...)
	return function() return res end
end

-- A thread counting while it sleeps in 1 ms steps, until stop().
function N.ticker()
	local t = {n = 0, on = true}
	loop.newthread(function()
		for _ = 1, 1e6 do
			if not t.on then break end
			t.n = t.n + 1
			loop.sleep(0.001)
		end
	end)
	function t.stop() t.on = false end
	return t
end

-- Serves one connection: answers each line with answer(line) until the peer closes,
-- then closes it.
function N.answer_lines(skt, answer)
	while true do
		local line = skt:receive('*l')
		if not line then break end
		assert(skt:send(answer(line) .. '\n'))
	end
	skt:close()
end

-- Sends `msg` as a line on `s` and checks the reply line is `want`; returns whether it
-- was.
function N.exchange(s, msg, want)
	assert(s:send(msg .. '\n'))
	local reply = s:receive('*l')
	return T.eq(reply, want, 'reply')
end

-- A client of a server answering lines reversed: makes `conns` connections to `port` on
-- loopback with connect, sends `lines` lines on each and checks every reply. Returns how
-- many replies were right.
function N.reverse_client(connect, port, id, conns, lines)
	local right = 0
	for k = 1, conns do
		local s = assert(connect('127.0.0.1', port))
		for i = 1, lines do
			local msg = ('client %d conn %d line %d'):format(id, k, i)
			if N.exchange(s, msg, msg:reverse()) then right = right + 1 end
		end
		s:close()
	end
	return right
end

-- Connects to `port` on loopback, sends `bytes` (then closes its side if `close`) and
-- reads until the peer closes (at most 5 s between reads); closes and returns what
-- receive('*a') returned.
function N.send_raw(port, bytes, close)
	local skt = assert(loop.connect('127.0.0.1', port))
	skt:settimeout(5)
	assert(skt:send(bytes))
	if close then skt:shutdown('send') end
	local data, err = skt:receive('*a')
	skt:close()
	return data, err
end

-- Runs f() in a plain coroutine, which is not a loop thread, and checks it ran to the
-- end without yielding.
function N.in_plain_coroutine(f)
	local co = coroutine.create(function()
		f()
		return 'finished'
	end)
	local ok, res = coroutine.resume(co)
	T.ok(ok, 'coroutine: ' .. tostring(res))
	T.eq(res, 'finished', 'ran to the end without yielding')
end

-- This process's id.
function N.pid()
	local f = assert(io.open('/proc/self/stat'))
	local pid = f:read('*l'):match('^(%d+)')
	f:close()
	return pid
end

-- A memory figure of this process (or of process `pid`) from /proc/<pid>/status, in KiB:
-- `field` VmRSS (resident now), VmHWM (the peak resident set).
function N.status_kib(field, pid)
	local f = assert(io.open('/proc/' .. (pid or 'self') .. '/status'))
	local kib = tonumber(f:read('*a'):match(field .. ':%s*(%d+)'))
	f:close()
	return kib
end

-- The resident set size of this process (or of process `pid`), in KiB (VmRSS).
function N.rss_kib(pid)
	return N.status_kib('VmRSS', pid)
end

-- Prints the figures of a run as one line, `FIGURES <name> key=value ...` (keys sorted),
-- for scripts/reliability.sh to put in docs/reliability.md. Numbers are printed with
-- up to 4 decimals, so the script never parses a figure from prose.
function N.figures(name, figures)
	local keys = {}
	for k in pairs(figures) do keys[#keys + 1] = k end
	table.sort(keys)
	local parts = {'FIGURES', name}
	for _, k in ipairs(keys) do
		local v = figures[k]
		if type(v) == 'number' and v ~= math.floor(v) then v = ('%.4f'):format(v) end
		parts[#parts + 1] = k .. '=' .. tostring(v)
	end
	io.stdout:write(table.concat(parts, ' '), '\n')
end

-- How many descriptors this process (or process `pid`) has open, optionally only those
-- below `below`, from /proc/<pid>/fd. The listing goes through a file, not a pipe: with
-- io.popen, ls could see the pipe's write end before this process closed it.
function N.fd_count(pid, below)
	pid = pid or N.pid()
	local tmp = os.tmpname()
	os.execute('ls /proc/' .. pid .. '/fd > ' .. tmp .. ' 2>/dev/null')
	local f = assert(io.open(tmp))
	local n = 0
	for fd in f:lines() do
		fd = tonumber(fd)
		if fd and fd < (below or math.huge) then n = n + 1 end
	end
	f:close()
	os.remove(tmp)
	return n
end

-- Starts tests/lua/lib/line_server.lua in its own process (under the same interpreter as
-- this script), with `ulimit -n limit` first when `limit` is given. Returns its pid, its
-- port, and a function that waits for it to exit and returns whether it exited 0 and
-- what else it printed.
function N.server_process(limit)
	local interp = T.mode == 'luajit' and 'luajit' or assert(os.getenv('SOCKETLOOP_BIN'))
	local cmd = ("exec '%s' tests/lua/lib/line_server.lua"):format((interp:gsub("'", "'\\''")))
	if limit then cmd = ('ulimit -n %d && '):format(limit) .. cmd end
	local p = assert(io.popen(cmd, 'r'))
	local pid, port = assert(p:read('*l'), 'the server did not start'):match('^(%d+) (%d+)$')
	local function wait()
		local rest = p:read('*a')
		local ok = p:close()
		return ok == true or ok == 0, rest
	end
	return pid, tonumber(port), wait
end

-- Call at the end of a socket script instead of T.finish(): checks no thread is left
-- parked and, after a full collection, no socket is left registered with the reactor,
-- then finishes as T.finish() does.
function N.finish()
	T.eq(loop.stats().pending, 0, 'nothing left parked')
	collectgarbage()
	collectgarbage()
	T.eq(loop.stats().registrations, 0, 'no socket left registered with the reactor')
	T.finish()
end

-- A server for fault tests: its handler answers lines reversed and answers the line
-- `word` with the string `payload` (a small send buffer makes a big payload park the
-- handler in send). Each connection is recorded in `conns` as {skt=, wakes=, outcome=}:
-- wakes counts the receive and send calls that returned, outcome what the failed call
-- returned. Returns the server, its port and conns.
function N.recording_server(word, payload)
	local conns = {}
	local srv = assert(loop.newserver('127.0.0.1', 0, function(skt)
		local conn = {skt = skt, wakes = 0}
		conns[#conns + 1] = conn
		skt:settimeout(10)
		skt:setoption('send-buffer-size', 65536)
		while true do
			local line, err, partial = skt:receive('*l')
			conn.wakes = conn.wakes + 1
			if not line then
				conn.outcome = {'receive', err, partial}
				break
			end
			if line == word then
				local last, serr, idx = skt:send(payload)
				conn.wakes = conn.wakes + 1
				if not last then
					conn.outcome = {'send', serr, idx}
					break
				end
			else
				assert(skt:send(line:reverse() .. '\n'))
			end
		end
		skt:close()
	end))
	local _, port = srv:getsockname()
	return srv, port, conns
end

return N
