-- For tests/runner_cli.rs: an echo server and a sleeping thread; prints "port N" once it
-- listens. SIGQUIT should print the thread dump on stderr and leave it serving.
local loop = require'socketloop'
local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
	while true do
		local line = skt:receive('*l')
		if not line then break end
		assert(skt:send('echo ' .. line .. '\n'))
	end
	skt:close()
end))
loop.newthread(function()
	loop.sleep(3600)
end)
local _, port = server:getsockname()
io.stdout:write('port ', port, '\n')
io.stdout:flush()
