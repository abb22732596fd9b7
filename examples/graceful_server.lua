-- A line server that stops gracefully: SIGTERM, SIGINT or SIGHUP (or the line
-- "shutdown" from a client) closes the listening socket at once, lets the connections
-- finish what they are doing for up to GRACE seconds, then cancels the rest and exits.
--
--   socketloop examples/graceful_server.lua [ip [port]]   (default 127.0.0.1 7000; port 0:
--                                                          any free port)
--   socketloop --workers auto examples/graceful_server.lua '*' 7000
--
-- Each connection gets "hello from worker I of N"; then each line it sends is
-- acknowledged ("got LINE") and comes back upper-cased after WORK seconds of pretend
-- work, and "bye" ends it. When the shutdown
-- begins, a connection waiting for its next line is told "server shutting down" and
-- closed; one whose line is being worked on gets its answer first. Prints "listening on
-- PORT" when ready, and on stderr a line per step of the shutdown.

local loop = require'socketloop'

local GRACE = 5    -- seconds the connections get to finish
local WORK = 0.5   -- seconds of pretend work per line
local IDLE = 60    -- seconds a connection may stay silent

local index, count = loop.worker()
local active = 0
local idle = {} -- thread -> true while its connection waits for its next line
local stop

local function log(fmt, ...)
	io.stderr:write(('[worker %d] '):format(index), fmt:format(...), '\n')
	io.stderr:flush()
end

local function serve(skt)
	active = active + 1
	local me = loop.current()
	skt:settimeout(IDLE)
	skt:send(('hello from worker %d of %d\n'):format(index, count))
	while true do
		if loop.shuttingdown() then
			skt:send('server shutting down\n')
			break
		end
		idle[me] = true
		local line, err = skt:receive('*l')
		idle[me] = nil
		if not line then
			if err == 'shutting down' then skt:send('server shutting down\n') end
			break
		end
		if line == 'bye' then break end
		if line == 'shutdown' then loop.newthread(stop, 'a client') end
		skt:send('got ' .. line .. '\n')
		loop.sleep(WORK) -- the work a line takes: a shutdown lets it finish
		skt:send(line:upper() .. '\n')
	end
	skt:close()
	active = active - 1
end

local server = assert(loop.newserver(arg[1] or '127.0.0.1', tonumber(arg[2] or 7000), serve))
io.stdout:write('listening on ', select(2, server:getsockname()), '\n')
io.stdout:flush()

function stop(name)
	if loop.shuttingdown() then return end
	log('%s: closing the listening socket, %d connections open', name, active)
	-- Connections waiting for their next line leave now; the others finish their line.
	for co in pairs(idle) do loop.cancel(co, 'shutting down') end
	local done, cancelled = loop.shutdown(GRACE)
	if done then
		log('every connection finished')
	else
		log('grace of %d s over: %d threads cancelled', GRACE, cancelled)
	end
	loop.stop()
end
for _, name in ipairs{'TERM', 'INT', 'HUP'} do loop.onsignal(name, stop) end
loop.start()
