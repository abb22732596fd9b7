-- socketloop.copas runs copas programs: the scenarios of copas's documentation and its
-- public examples, written as copas programs (require'copas' is socketloop.copas here):
-- a TCP echo server with copas.handler and clients through copas.wrap(socket.tcp()),
-- threads started on the next dispatch, pause/pauseforever/wakeup, removethread, error
-- handlers (per thread, default, the built-in one that prints), autoclose, server
-- timeouts, copas.exit draining with waitforexit, step/finished, names.
local T = require'testlib'
package.loaded.copas = require'socketloop.copas'
local copas = require'copas'
local socket = require'socket'

-- The echo server of copas's manual, with a name and a client timeout.
local log = {}
local function say(s) log[#log + 1] = s end
local server = assert(socket.bind('127.0.0.1', 0))
local _, port = server:getsockname()
local handlers_named = {}
copas.addserver(server, copas.handler(function(skt)
	handlers_named[#handlers_named + 1] = copas.getthreadname()
	while true do
		local line, err = skt:receive()
		if not line then
			say('server: ' .. err)
			break
		end
		if line == 'fail' then error('handler failed', 0) end
		skt:send(line:upper() .. '\n')
	end
end), 2, 'echo')
T.ok(server:getsockname(), 'the program keeps a working server object')

-- A thread added by addthread starts on the next dispatch, not at once.
local order = {}
copas.addthread(function(a, b)
	order[#order + 1] = 'thread ' .. a .. b
end, 'x', 'y')
order[#order + 1] = 'after addthread'

-- pause returns the time paused; wakeup ends a pause and a pauseforever early.
local sleeper = copas.addthread(function()
	local slept = copas.pause(30)
	T.ok(slept < 10, 'woken early from pause(30): ' .. slept)
	say('sleeper woken')
end)
local forever = copas.addthread(function()
	copas.pauseforever()
	say('forever woken')
end)
local removed = copas.addthread(function()
	copas.pause(30)
	say('removed thread ran')
end)

-- Error handlers: a thread's own, the default (set with `true`), and one that fails.
local errors = {}
copas.addthread(function()
	copas.seterrorhandler(function(err, co, skt)
		errors[#errors + 1] = 'own: ' .. tostring(err):match('[^:]+$'):gsub('^ ', '') .. ' ' .. type(co) .. ' ' .. tostring(skt)
	end)
	error('thread error')
end)
copas.addthread(function()
	copas.setErrorHandler(function() error('handler broke', 0) end)
	error('second')
end)

copas.addthread(function()
	-- Clients: copas.wrap over LuaSocket objects, as copas's client example.
	local c = copas.wrap(socket.tcp())
	T.eq(tostring(c):match('copas wrapped') ~= nil, true, 'wrapped socket says so')
	T.ok(c:connect('127.0.0.1', port), 'connect')
	for i = 1, 3 do
		c:send('line ' .. i .. '\n')
		T.eq(c:receive(), 'LINE ' .. i, 'echoed')
	end
	-- An error in a handler goes to the default handler; its client is closed (autoclose).
	copas.seterrorhandler(function(err, co, skt)
		errors[#errors + 1] = 'default: ' .. tostring(err) .. ' ' .. copas.getthreadname(co)
			.. ' ' .. tostring(skt ~= nil)
	end, true)
	c:send('fail\n')
	local data, err = c:receive()
	T.eq(data, nil, 'no answer after the handler failed')
	T.eq(err, 'closed', 'the failed handler\'s client was closed')
	c:close()

	-- The server's timeout (2 s) is inherited by its clients: an idle client is dropped.
	local idle = copas.wrap(socket.tcp())
	assert(idle:connect('127.0.0.1', port))
	idle:settimeout(10)
	local got, why = idle:receive()
	T.eq(got, nil, 'idle client')
	T.eq(why, 'closed', 'the server timed out its idle client and closed it')
	idle:close()

	-- Raw copas functions on an unwrapped LuaSocket object.
	local raw = socket.tcp()
	T.ok(copas.connect(raw, '127.0.0.1', port), 'copas.connect on a LuaSocket object')
	T.ok(copas.send(raw, 'raw\n'), 'copas.send')
	T.eq(copas.receive(raw), 'RAW', 'copas.receive')
	copas.settimeouts(raw, nil, nil, 0)
	local d, e, part = copas.receivepartial(raw, '*a')
	T.eq(d, nil, 'receivepartial with nothing there')
	T.eq(e, 'timeout', 'receivepartial says timeout')
	T.eq(part, '', 'no partial data')
	copas.close(raw)

	copas.wakeup(sleeper)
	copas.wakeup(forever)
	copas.wakeup(copas.addthread(function() end)) -- not paused: nothing happens
	copas.removethread(removed)
	local s0 = copas.gettime()
	T.ok(math.abs(s0 - os.time()) < 5, 'gettime is seconds since the epoch')
	copas.removeserver(server)
end)

-- copas.exit draining: a thread waiting for exit runs when everything else is done.
copas.addthread(function()
	T.eq(copas.exiting(), false, 'not exiting yet')
	copas.waitforexit()
	T.eq(copas.exiting(), true, 'exiting')
	say('drained')
end)

T.eq(copas.running, false, 'not running before loop')
T.eq(copas.finished(), false, 'work is scheduled before the loop starts')
local ran_init = false
copas.loop(function()
	ran_init = copas.getthreadname() == 'copas_initializer'
	T.eq(copas.running, true, 'running inside loop')
end)
T.eq(copas.running, false, 'not running after loop')
T.ok(copas.finished(), 'finished after loop')
T.ok(ran_init, 'the initializer ran as copas_initializer')
T.eq(order[1], 'after addthread', 'addthread returned before the thread ran')
T.eq(order[2], 'thread xy', 'the thread got its arguments')
T.eq(handlers_named[1], 'echo:handler_1', 'handler threads are named after the server')
table.sort(log)
T.eq(table.concat(log, ','), 'drained,forever woken,server: closed,server: timeout,sleeper woken',
	'what happened')
table.sort(errors)
T.eq(#errors, 2, 'two errors handled')
T.eq(errors[1], 'default: handler failed echo:handler_1 true', 'handler error to the default handler')
T.eq(errors[2], 'own: thread error thread nil', 'thread error to its own handler')

-- step and finished outside loop: a pause(0) thread needs one dispatch.
local stepped = false
copas.addthread(function() stepped = true end)
T.eq(copas.finished(), false, 'a new thread is work')
for _ = 1, 10 do
	if stepped then break end
	copas.step(0.1)
end
T.ok(stepped, 'step ran the thread')

-- copas() is copas.loop.
local called = false
copas(function() called = true end)
T.ok(called, 'copas(init) runs the loop')
T.finish()
