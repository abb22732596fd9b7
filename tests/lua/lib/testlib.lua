-- Helpers for the Lua test scripts: checks that fail the script, and a driver that runs
-- a test body in a loop thread and fails if it did not finish or if any thread raised.

local loop = require'socketloop'

local T = {mode = os.getenv('SOCKETLOOP_TEST_MODE') or 'runner'}

local failures = 0
local checks = 0

local function fail(msg, level)
	failures = failures + 1
	io.stderr:write('FAIL: ', debug.traceback(msg, level or 3), '\n')
end

function T.ok(cond, msg)
	checks = checks + 1
	if not cond then fail(msg or 'check failed') end
	return cond
end

function T.eq(got, want, msg)
	checks = checks + 1
	if got ~= want then
		fail((msg and msg .. ': ' or '') .. 'got ' .. tostring(got) .. ', want ' .. tostring(want))
	end
	return got == want
end

-- Calls f(...) and checks it raises an error whose message contains `pattern` (plain).
function T.raises(pattern, f, ...)
	checks = checks + 1
	local ok, err = pcall(f, ...)
	if ok then
		fail('expected an error containing ' .. pattern)
	elseif type(err) ~= 'string' or not err:find(pattern, 1, true) then
		fail('error ' .. tostring(err) .. ' does not contain ' .. pattern)
	end
end

-- Deep equality of plain values: tables are the same when their keys hold the same
-- values. With `nan`, NaN equals NaN; with `signed_zero`, 0 and -0 differ.
function T.same(a, b, nan, signed_zero)
	if nan and a ~= a and b ~= b then return true end
	if type(a) ~= 'table' or type(b) ~= 'table' then
		return a == b and (not signed_zero or a ~= 0 or 1 / a == 1 / b)
	end
	for k, v in pairs(a) do
		if not T.same(v, b[k], nan, signed_zero) then return false end
	end
	for k in pairs(b) do
		if a[k] == nil then return false end
	end
	return true
end

-- Errors in any loop thread fail the script.
loop.onerror(function(err, trace)
	fail('error in loop thread: ' .. trace, 2)
end)

-- Runs body() in a loop thread, drives the loop until it is idle, and checks the body
-- finished.
function T.run(name, body)
	local finished = false
	loop.newthread(function()
		body()
		finished = true
	end)
	loop.start()
	T.ok(finished, name .. ': the test thread did not finish')
	io.stdout:write(name, ': ', finished and 'done' or 'NOT FINISHED', '\n')
end

-- Call at the end of a script: prints a summary and exits 1 on any failure.
function T.finish()
	io.stdout:write(string.format('%d checks, %d failures (%s)\n', checks, failures, T.mode))
	io.stdout:flush()
	if failures > 0 then os.exit(1) end
end

return T
