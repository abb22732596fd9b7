-- A server for the --workers tests of tests/runner_shutdown.rs: on 127.0.0.1:PORT (the
-- first argument), answers each connection with "worker INDEX COUNT PID\n" and closes it.
-- Each worker prints "worker INDEX listening" once it listens.
local loop = require'socketloop'

local f = assert(io.open('/proc/self/stat'))
local pid = f:read('*n')
f:close()
local index, count = loop.worker()

assert(loop.newserver('127.0.0.1', tonumber(arg[1]), function(skt)
	skt:send(('worker %d %d %d\n'):format(index, count, pid))
	skt:close()
end))
io.stdout:write('worker ', index, ' listening\n')
io.stdout:flush()
