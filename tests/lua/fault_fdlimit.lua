-- Faults: a server out of descriptors. The server (tests/lua/lib/line_server.lua) runs in
-- its own process under `ulimit -n 64`; 200 clients in this process connect at once and
-- each sends a line. The server accepts until its descriptor table is full (64 open, read
-- from /proc/<pid>/fd), answers those clients, and keeps answering them while saturated;
-- while saturated it uses less than half the CPU time of the wall time (from
-- /proc/<pid>/stat; a spinning accept loop would use all of it). Then the held clients
-- hang up, the server accepts the waiting ones as descriptors free up, and every one of
-- the 200 gets its right reply; the server ends with as many descriptors as it started
-- with and exits 0 when told.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'
local await = N.await

local CLIENTS = 200
local LIMIT = 64
-- seconds the server is kept saturated while its CPU time is measured (FAULT_FD_SATURATED)
local SATURATED = tonumber(os.getenv('FAULT_FD_SATURATED')) or 1

-- The server's open descriptors below LIMIT (it may have inherited higher ones, which
-- the limit does not count).
local function fd_count(pid) return N.fd_count(pid, LIMIT) end

local TICK
do
	local p = io.popen('getconf CLK_TCK')
	TICK = 1 / tonumber(p:read('*l'))
	p:close()
end
-- utime + stime of the process, in seconds.
local function cpu_seconds(pid)
	local f = io.open('/proc/' .. pid .. '/stat')
	local stat = f:read('*l')
	f:close()
	-- the fields after the command name (in parentheses, which may hold spaces)
	local rest = stat:match('%) (.*)$')
	local fields = {}
	for x in rest:gmatch('%S+') do fields[#fields + 1] = x end
	-- utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name
	return (tonumber(fields[12]) + tonumber(fields[13])) * TICK
end

local pid, port, server_exit = N.server_process(LIMIT)
local told = false

local ok, err = pcall(T.run, 'fd limit', function()
	local start_fds = fd_count(pid)
	T.ok(start_fds and start_fds < LIMIT, 'the server starts below its limit: ' .. tostring(start_fds))
	local release = false
	local replies, held, right = 0, 0, 0
	local clients = {}
	for i = 1, CLIENTS do
		clients[i] = N.spawn(function()
			local s = assert(loop.connect('127.0.0.1', port))
			s:settimeout(60)
			local msg = 'client ' .. i
			assert(s:send(msg .. '\n'))
			local reply = s:receive('*l')
			replies = replies + 1
			local good = reply == msg:reverse()
			if not release then
				-- served while the server is saturated: hold the connection, and do
				-- more round trips once the server is full
				held = held + 1
				while not release do loop.sleep(0.01) end
				for k = 1, 3 do
					local m = msg .. ' again ' .. k
					good = N.exchange(s, m, m:reverse()) and good
				end
			end
			if good then right = right + 1 end
			s:close()
			return good
		end)
	end
	-- saturated: every descriptor of the server in use
	await(function() return fd_count(pid) == LIMIT end, 'the server to run out of descriptors', 500, 0.01)
	await(function() return replies == held and held == LIMIT - start_fds end,
		'the accepted clients to be answered', 500, 0.01)
	T.eq(held, LIMIT - start_fds, 'clients served while saturated')
	local cpu0 = cpu_seconds(pid)
	loop.sleep(SATURATED)
	local cpu = cpu_seconds(pid) - cpu0
	T.eq(fd_count(pid), LIMIT, 'still saturated after the measured period')
	T.eq(replies, held, 'nobody else was served meanwhile')
	T.ok(cpu < SATURATED / 2, ('server CPU time while saturated: %.2f s in %g s'):format(cpu, SATURATED))
	io.stdout:write(('saturated: %d of %d clients held, server CPU %.2f s in %g s, %d fds\n'):format(
		held, CLIENTS, cpu, SATURATED, LIMIT))
	N.figures('fault_fdlimit', {
		clients = CLIENTS, fd_limit = LIMIT, held = held, saturated_s = SATURATED, server_cpu_s = cpu,
	})
	-- recover: the held clients do their round trips and hang up; the rest are accepted
	release = true
	await(function()
		for i = 1, CLIENTS do if not clients[i]() then return false end end
		return true
	end, 'every client to be served', 3000, 0.01)
	T.eq(replies, CLIENTS, 'every client got a reply')
	T.eq(right, CLIENTS, 'every reply right')
	await(function() return fd_count(pid) == start_fds end, 'the server to close its connections', 500, 0.01)
	T.eq(fd_count(pid), start_fds, 'the server is back to its starting descriptors')
	T.eq(N.send_raw(port, 'quit\n'), 'bye\n', 'the server still serves, and stops when told')
	told = true
end)
T.ok(ok, tostring(err))
-- on a failure, stop the server (by its pid) rather than wait for it
if not told then os.execute('kill ' .. pid) end
local exited_ok, rest = server_exit()
T.eq(rest, '', 'the server printed nothing more')
T.ok(exited_ok, 'the server exited 0')
N.finish()
