-- Each public submodule can be required first, before 'socketloop' itself: under stock
-- luajit through the library's luaopen_socketloop_<name> entry points, under the runner
-- through its preloads. Checked in a fresh process for each submodule.
local T = require'testlib'

local interpreter = T.mode == 'luajit' and 'luajit' or os.getenv('SOCKETLOOP_BIN')
for _, name in ipairs{'coro', 'rpc', 'tango', 'http', 'ltn12', 'httpserver', 'copas'} do
	local cmd = ("%s -e \"local m = require'socketloop.%s'; "
		.. "io.write(type(m), ' ', tostring(package.loaded['socketloop.%s'] == m))\" 2>&1")
		:format(interpreter, name, name)
	local p = assert(io.popen(cmd))
	local out = p:read('*a')
	p:close()
	T.eq(out, 'table true', 'require socketloop.' .. name .. ' first')
end
T.finish()
