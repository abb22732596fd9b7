-- Misuse of the thread and loop functions raises Lua errors that name the function and the
-- argument, at the caller's line.
local loop = require'socketloop'
local coro = require'socketloop.coro'
local T = require'testlib'
require'threads_util'

local SCRIPT = 'threads_misuse.lua:'

-- Checks f raises an error containing every string of `parts` and pointing at this script.
local function misuse(what, f, ...)
	local ok, err = pcall(f)
	if not T.ok(not ok, what .. ': no error raised') then return end
	T.eq(type(err), 'string', what .. ': error type')
	err = tostring(err)
	for _, part in ipairs{...} do
		T.ok(err:find(part, 1, true), what .. ': "' .. err .. '" lacks "' .. part .. '"')
	end
	T.ok(err:find(SCRIPT, 1, true), what .. ': "' .. err .. '" does not point at the caller')
end

local function checks()
	misuse('newthread(nil)', function() loop.newthread(nil) end,
		"bad argument #1 to 'newthread'", 'function expected, got nil')
	misuse('newthread(1)', function() loop.newthread(1) end,
		"bad argument #1 to 'newthread'", 'got number')
	misuse('coro newthread(nil)', function() loop.coro.newthread(nil) end,
		"bad argument #1 to 'newthread'", 'got nil')
	misuse("sleep('x')", function() loop.sleep('x') end,
		"bad argument #1 to 'sleep'", 'number expected, got string')
	misuse('sleep()', function() loop.sleep() end, "bad argument #1 to 'sleep'", 'got nil')
	misuse("step('x')", function() loop.step('x') end,
		"bad argument #1 to 'step'", 'number expected, got string')
	misuse("start('x')", function() loop.start('x') end,
		"bad argument #1 to 'start'", 'number expected, got string')
	misuse('newserver(..., nil)', function() loop.newserver('127.0.0.1', 0, nil) end,
		"bad argument #3 to 'newserver'", 'function expected, got nil')
	misuse('newserver(..., {})', function() loop.newserver('127.0.0.1', 0, {}) end,
		"bad argument #3 to 'newserver'", 'got table')
	misuse('onerror(1)', function() loop.onerror(1) end,
		"bad argument #1 to 'onerror'", 'function expected, got number')
	misuse("onerror('f')", function() loop.onerror('f') end,
		"bad argument #1 to 'onerror'", 'got string')
	misuse('resume(nil)', function() loop.resume(nil) end,
		"bad argument #1 to 'resume'", 'thread expected, got nil')
	misuse('resume(a thread not suspended)', function() loop.resume(coroutine.create(print)) end,
		"bad argument #1 to 'resume'", 'not suspended')
	misuse('coro.create(nil)', function() coro.create(nil) end,
		"bad argument #1 to 'create'", 'function expected, got nil')
	misuse('coro.transfer(1)', function() coro.transfer(1) end,
		"bad argument #1 to 'transfer'", 'got number')
	misuse('coro.create(f, 1)', function() coro.create(print, 1) end, "'create'", 'got number')
end

-- the checks hold in the main chunk and in a loop thread
checks()
T.run('misuse in a loop thread', function()
	checks()
	-- misuse leaves the loop usable: nothing was registered or parked
	local s = loop.stats()
	checks()
	local s2 = loop.stats()
	T.eq(s2.pending, s.pending, 'pending unchanged')
	T.eq(s2.registrations, s.registrations, 'no registration leaked by a failed newserver')
	loop.sleep(0.001)
end)

-- suspend outside a loop thread
misuse('suspend in a plain coroutine', coroutine.wrap(function() loop.suspend() end),
	"'suspend'", 'outside a loop thread')
if T.mode == 'luajit' then
	misuse('suspend in the main thread', function() loop.suspend() end, "'suspend'")
end

-- a misused onerror leaves the handler in place: errors still reach testlib's handler
local caught
local previous = loop.onerror(function(err) caught = err end)
pcall(loop.onerror, 42)
loop.newthread(function() error('still mine', 0) end)
T.eq(caught, 'still mine', 'onerror(42) did not replace the handler')
loop.onerror(previous)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
