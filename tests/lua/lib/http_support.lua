-- Helpers for the HTTP test scripts (tests/lua/http_*.lua), loaded with dofile:
-- child processes (Python's http.server, our examples) started on free ports of
-- 127.0.0.1 and stopped by their PIDs, temporary directories, and scripted servers.

local loop = require'socketloop'

local H = {}

-- Quotes `s` for sh.
function H.quote(s)
	return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The interpreter the test runs under, to run our examples with: the runner, or
-- stock luajit (LUA_CPATH, set by the test harness, finds the module).
function H.interpreter()
	if os.getenv('SOCKETLOOP_TEST_MODE') == 'luajit' then return 'luajit' end
	return H.quote(assert(os.getenv('SOCKETLOOP_BIN'), 'SOCKETLOOP_BIN is not set'))
end

-- Starts `cmd` (a sh command line) with its stdout piped to us; the shell prints its PID
-- and then becomes the command, so the PID is the command's (under `timeout`, which
-- passes our kill on, and ends the command anyway should this script die first).
-- Returns {pid=, out=}. Reading `out` blocks the whole process: do it only while
-- nothing else runs.
function H.spawn(cmd)
	local out = assert(io.popen('echo $$; exec timeout 120 ' .. cmd, 'r'))
	local pid = tonumber(out:read('*l'))
	assert(pid, 'spawn: no pid from ' .. cmd)
	return {pid = pid, out = out}
end

-- The PID of the command a spawn runs (spawn's own PID is `timeout`'s). Signal this one
-- to signal the command once: `timeout` passes a signal on to the command and then to
-- its whole process group, so the command gets it twice, and a second SIGTERM during a
-- graceful shutdown ends the runner at once.
function H.command_pid(p)
	local f = assert(io.open(('/proc/%d/task/%d/children'):format(p.pid, p.pid)))
	local pid = tonumber(f:read('*a'):match('%d+'))
	f:close()
	return assert(pid, 'the spawned command is not running')
end

-- Stops a process started by spawn and waits for it.
function H.stop(p)
	os.execute('kill ' .. p.pid .. ' 2>/dev/null')
	p.out:close()
end

-- Runs `cmd` to its end; returns its stdout and its exit status. (LuaJIT's close of a
-- popen'd file does not give the status, so the shell prints it last.)
function H.run(cmd)
	local f = assert(io.popen('(' .. cmd .. '); echo "exit status $?"', 'r'))
	local out = f:read('*a')
	f:close()
	local body, status = out:match('^(.-)exit status (%d+)\n$')
	return body or out, tonumber(status)
end

-- A new empty directory; H.rmdir removes it.
function H.tmpdir()
	local f = assert(io.popen('mktemp -d'))
	local dir = f:read('*l')
	f:close()
	return assert(dir, 'mktemp -d gave nothing')
end

function H.rmdir(dir)
	assert(dir:match('^/tmp/'), 'refusing to remove ' .. dir)
	os.execute('rm -rf ' .. H.quote(dir))
end

function H.write(path, data)
	local f = assert(io.open(path, 'wb'))
	f:write(data)
	f:close()
end

-- Python's http.server serving `dir` on a free port of 127.0.0.1 (`protocol`:
-- 'HTTP/1.0', its default, or 'HTTP/1.1' for keep-alive). Returns the process and the
-- base URL (ending in '/'). `backlog` replaces its listen backlog of 5 (connections
-- beyond it are dropped or reset while the server is busy), for many clients at once.
function H.python_server(dir, protocol, backlog)
	local module = '-m http.server'
	if backlog then
		module = ("-c 'import runpy, socketserver, sys; socketserver.TCPServer.request_queue_size = %d; "
			.. 'sys.argv[0] = "http.server"; runpy.run_module("http.server", run_name="__main__")\''):format(backlog)
	end
	local p = H.spawn(('python3 -u %s 0 --bind 127.0.0.1 --directory %s --protocol %s 2>/dev/null')
		:format(module, H.quote(dir), protocol or 'HTTP/1.0'))
	local line = p.out:read('*l') or ''
	local port = line:match(' port (%d+)')
	assert(port, 'python http.server did not start: ' .. line)
	return p, 'http://127.0.0.1:' .. port .. '/'
end

-- examples/http_server.lua as a child process under the test's interpreter. Returns
-- the process and the base URL (without a trailing '/').
function H.example_server()
	local p = H.spawn(H.interpreter() .. ' examples/http_server.lua 127.0.0.1 0')
	local line = p.out:read('*l') or ''
	local base = line:match('listening on (http://[%d.]+:%d+)/')
	assert(base, 'examples/http_server.lua did not start: ' .. line)
	return p, base
end

-- A server on the loop, in this process: handler(client) runs for each connection.
-- Returns the server socket, a table counting accepted connections, and the base URL.
function H.scripted(handler)
	local counts = {connections = 0}
	local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
		counts.connections = counts.connections + 1
		handler(skt)
	end))
	local _, port = server:getsockname()
	return server, counts, 'http://127.0.0.1:' .. port
end

-- Reads a request head from a scripted server's client: the request line and a table
-- of lower-case header fields; nil when the client closed.
function H.read_request(skt)
	local line = skt:receive('*l')
	if not line then return nil end
	local fields = {}
	while true do
		local l = skt:receive('*l')
		if not l or l == '' then break end
		local name, value = l:match('^([^:]+):%s*(.-)%s*$')
		fields[name:lower()] = value
	end
	return line, fields
end

-- A complete response with a Content-Length body.
function H.response(code, body, extra)
	return ('HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n%s'):format(code, #body, extra or '', body)
end

return H
