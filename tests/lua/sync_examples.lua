-- examples/worker_pool.lua and examples/graceful_server.lua, run as their users run them
-- (as child processes, under the same interpreter as this test).
local loop = require'socketloop'
local T = require'testlib'
local H = require'http_support'

local server, base = H.example_server()
local run = H.interpreter()

T.run('worker_pool.lua: every URL once, a deadline per URL', function()
	-- A server that accepts (the kernel does, into the backlog) and never answers.
	local silent = assert(loop.tcp('127.0.0.1', 0))
	assert(silent:listen(8))
	local _, port = silent:getsockname()
	local never = 'http://127.0.0.1:' .. port .. '/never'
	local urls = {base .. '/a', base .. '/bytes/5000', never, base .. '/b', base .. '/c'}
	local out, status = H.run(run .. ' examples/worker_pool.lua -w 3 -t 2 ' .. table.concat(urls, ' '))
	T.eq(status, 1, 'exit status with a failure')
	local seen = {}
	for line in out:gmatch('[^\n]+') do
		local url = line:match('ms  (%S+)')
		if url then seen[url] = line end
	end
	for _, url in ipairs(urls) do T.ok(seen[url], 'a line for ' .. url .. ':\n' .. out) end
	T.ok((seen[base .. '/bytes/5000'] or ''):find('^200%s+5000 B'), 'a fetched URL')
	T.ok((seen[never] or ''):find('^error .*%(timeout%)$'), 'the silent server hit its deadline')
	T.ok(out:find('total: 5 URLs, 1 failed, ', 1, true), 'totals:\n' .. out)
	silent:close()
end)

T.run('graceful_server.lua: SIGTERM lets the work finish, sends the idle away', function()
	local p = H.spawn(run .. ' examples/graceful_server.lua 127.0.0.1 0')
	local port = tonumber((p.out:read('*l') or ''):match('listening on (%d+)'))
	T.ok(port, 'the server started')
	local busy = assert(loop.connect('127.0.0.1', port))
	local idle = assert(loop.connect('127.0.0.1', port))
	busy:settimeout(10) idle:settimeout(10)
	T.ok(busy:receive('*l'):find('^hello from worker 1 of 1'), 'greeting')
	T.ok(idle:receive('*l'):find('^hello'), 'greeting')
	busy:send('work\n')
	T.eq(busy:receive('*l'), 'got work', 'the server is working on the line')
	os.execute('kill -TERM ' .. H.command_pid(p)) -- one SIGTERM (see H.command_pid)
	T.eq(idle:receive('*l'), 'server shutting down', 'an idle connection is sent away')
	T.eq(select(2, idle:receive('*l')), 'closed')
	T.eq(select(2, loop.connect('127.0.0.1', port)), 'connection refused', 'no new connection')
	T.eq(busy:receive('*l'), 'WORK', 'the line under way is answered')
	T.eq(busy:receive('*l'), 'server shutting down')
	busy:close() idle:close()
	T.eq(p.out:read('*a'), '', 'the server ended')
	p.out:close()
end)

H.stop(server)
T.finish()
