-- Runs the greet server and client of tango's tutorial (examples/tango_greet_*.lua) as
-- two processes with the interpreter under test: the client's greeting must show up in
-- the server's output.
local loop = require'socketloop'
local tango = require'socketloop.tango'
local T = require'testlib'

local interpreter = T.mode == 'luajit' and 'luajit' or (os.getenv('SOCKETLOOP_BIN') or 'target/release/socketloop')

local function slurp(path)
	local f = io.open(path)
	if not f then return '' end
	local s = f:read('*a')
	f:close()
	return s
end

T.run('tango greet example', function()
	-- a free port: bind port 0, note it, close
	local probe = assert(loop.newserver('127.0.0.1', 0, function() end))
	local _, port = probe:getsockname()
	probe:close()

	local server_out, pidfile, client_out = os.tmpname(), os.tmpname(), os.tmpname()
	os.execute(('%s examples/tango_greet_server.lua %d > %s 2>&1 & echo $! > %s')
		:format(interpreter, port, server_out, pidfile))
	local pid = tonumber(slurp(pidfile))
	T.ok(pid, 'server started')

	local up = false
	for _ = 1, 400 do
		local con = tango.client.connect{address = 'localhost', port = port}
		if con then
			tango.close(con)
			up = true
			break
		end
		loop.sleep(0.025)
	end
	T.ok(up, 'the server listens; its output:\n' .. slurp(server_out))

	local status = os.execute(('%s examples/tango_greet_client.lua %d > %s 2>&1'):format(interpreter, port, client_out))
	local said = slurp(client_out)
	T.eq(status, 0, 'the client exits 0; it printed:\n' .. said)
	T.ok(said:find('the server says sqrt(4) is 2', 1, true), 'the client read a result:\n' .. said)

	local heard = ''
	for _ = 1, 400 do
		heard = slurp(server_out)
		if heard:find('Hello\tHorst', 1, true) then break end
		loop.sleep(0.025)
	end
	T.ok(heard:find('Hello\tHorst', 1, true), 'the server printed the greeting:\n' .. heard)

	if pid then
		os.execute('kill ' .. pid)
		local gone = false
		for _ = 1, 400 do
			if os.execute('kill -0 ' .. pid .. ' 2>/dev/null') ~= 0 then gone = true break end
			loop.sleep(0.025)
		end
		T.ok(gone, 'the server stopped')
	end
	os.remove(server_out); os.remove(pidfile); os.remove(client_out)
end)

T.finish()
