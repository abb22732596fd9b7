-- Outside a loop thread, a socket whose last read took everything there was must still
-- read again once poll(2) says data arrived (the loop's skip-the-EAGAIN-read shortcut
-- only holds while the reactor sees the readiness events).
local loop = require'socketloop'
local T = require'testlib'

local server = assert(loop.tcp('127.0.0.1', 0))
assert(server:listen())
local _, port = server:getsockname()

-- A peer in another process: two lines, the second after a pause, then close.
local peer = io.popen(("luajit -e \"local s = require'socket' "
	.. "local c = assert(s.connect('127.0.0.1', %d)) c:send('first\\n') s.sleep(0.3) "
	.. "c:send('second\\n') s.sleep(0.2) c:close()\""):format(port))

local co = coroutine.create(function()
	local c = assert(server:accept())
	c:settimeout(10, 't')
	local a, err1 = c:receive('*l')
	local b, err2 = c:receive('*l')
	local d, err3 = c:receive('*l')
	c:close()
	T.eq(loop.current(), nil, 'not in a loop thread')
	return a, err1, b, err2, d, err3
end)
local ok, a, err1, b, err2, d, err3 = coroutine.resume(co)
T.ok(ok, tostring(a))
T.eq(a, 'first', 'first line (' .. tostring(err1) .. ')')
T.eq(b, 'second', 'the line that came later (' .. tostring(err2) .. ')')
T.eq(err3, 'closed', 'then the close')
T.eq(d, nil, 'no third line')
peer:close()
server:close()
T.finish()
