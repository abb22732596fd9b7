-- An echo server that runs until a signal stops the runner, for tests/runner_cli.rs.
-- Prints "port N" once it listens. With the argument 'start' the script ends with
-- loop.start(), as a script written for stock luajit does; with 'thread-start' a thread
-- waits in loop.start(); otherwise the main chunk just ends and the runner keeps the loop
-- going.
local loop = require'socketloop'

-- Shows the Lua state was closed normally (finalizers run) rather than the process killed.
FINALIZER = newproxy(true)
getmetatable(FINALIZER).__gc = function()
	io.stdout:write('finalized\n')
	io.stdout:flush()
end

local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
	while true do
		local line = skt:receive('*l')
		if not line then break end
		assert(skt:send('echo ' .. line .. '\n'))
	end
	skt:close()
end))
local _, port = server:getsockname()
io.stdout:write('port ', port, '\n')
io.stdout:flush()
if ... == 'start' then
	loop.start()
	io.stdout:write('after start\n')
	io.stdout:flush()
elseif ... == 'thread-start' then
	loop.newthread(function()
		loop.start()
		io.stdout:write('after start in a thread\n')
		io.stdout:flush()
	end)
end
