-- Not a test script: a server in its own process, for the scripts that need one
-- (fault_fdlimit.lua runs it under `ulimit -n 64`, load_conns.lua with LOAD_SPLIT=1).
-- Answers each line reversed, except: 'mem' is answered with the process's RSS (KiB,
-- VmRSS) and its Lua heap after a full collection (KiB); 'quit' closes the listening
-- socket, so the process exits once its last client has gone. Prints its pid and port on
-- one line first.
local loop = require'socketloop'

local function rss_kib()
	local f = assert(io.open('/proc/self/status'))
	local kib = tonumber(f:read('*a'):match('VmRSS:%s*(%d+)'))
	f:close()
	return kib
end

local stat = assert(io.open('/proc/self/stat'))
local pid = stat:read('*l'):match('^(%d+)')
stat:close()
local srv
srv = assert(loop.newserver('127.0.0.1', 0, function(skt)
	skt:settimeout(60)
	while true do
		local line = skt:receive('*l')
		if not line then break end
		if line == 'quit' then
			srv:close()
			skt:send('bye\n')
			break
		elseif line == 'mem' then
			collectgarbage()
			collectgarbage()
			line = ('%d %.1f'):format(rss_kib(), collectgarbage('count')):reverse()
		end
		if not skt:send(line:reverse() .. '\n') then break end
	end
	skt:close()
end))
local _, port = srv:getsockname()
io.stdout:write(pid, ' ', port, '\n')
io.stdout:flush()
loop.start()
