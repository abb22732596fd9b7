-- Helpers shared by the threads_* and coro_* test scripts (a module, not a test script).
local loop = require'socketloop'
local T = require'testlib'

local U = {}

-- A script that stops before T.finish() fails: under the runner, a main chunk left
-- suspended for good would otherwise end the process with status 0. The check runs when
-- the interpreter closes its state (finalizers run then, in both modes).
local finished = false
U.guard = newproxy(true)
getmetatable(U.guard).__gc = function()
	if not finished then
		io.stderr:write('FAIL: the script did not reach T.finish()\n')
		io.stderr:flush()
		os.exit(1)
	end
end
local finish = T.finish
function T.finish()
	finished = true
	return finish()
end

function U.pack(...)
	return {n = select('#', ...), ...}
end

-- Sleeps in small steps until cond() holds; at most `limit` steps (a bound on the number
-- of steps, not a deadline). Returns whether cond() held.
function U.wait_until(cond, what, limit)
	for _ = 1, limit or 5000 do
		if cond() then return true end
		loop.sleep(0.002)
	end
	return T.ok(cond(), 'gave up waiting for ' .. what)
end

-- The interpreter running this script: the runner, or luajit (which finds the module
-- through the LUA_CPATH the test harness set).
U.interpreter = T.mode == 'runner' and os.getenv('SOCKETLOOP_BIN') or 'luajit'

-- Runs `code` as a script in a child process with the same interpreter. Returns its
-- stdout, its stderr and its exit status.
function U.child(code)
	local script, out = os.tmpname(), os.tmpname()
	local f = assert(io.open(script, 'w'))
	f:write(code)
	f:close()
	local cmd = ("'%s' '%s' 2>&1 >'%s'; echo \"exit=$?\""):format(U.interpreter, script, out)
	local p = assert(io.popen(cmd))
	local stderr = p:read('*a')
	p:close()
	f = assert(io.open(out))
	local stdout = f:read('*a')
	f:close()
	os.remove(script)
	os.remove(out)
	local status = tonumber(stderr:match('exit=(%d+)\n$'))
	stderr = stderr:gsub('exit=%d+\n$', '')
	return stdout, stderr, status
end

return U
