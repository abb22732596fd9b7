-- tango's text parser (core.tango_parse) and finalizers: every Lua value it builds is an
-- allocation that may run the collector and so any __gc finalizer, which may raise
-- (stock beta3 propagates the error out of the allocation), allocate heavily, or decode
-- another text itself. A large value is decoded many times with the collector always
-- busy and such finalizers littered: each decode gives the right value or the
-- finalizer's own error, never a crash or a wrong value. Then numbers: the parser
-- converts them in Rust, as LuaJIT's loadstring does.
local T = require'testlib'
local text = require'socketloop.tango.text'

-- Stock beta3 crashes by itself when a finalizer raises inside JIT-compiled code (see
-- sound_finalizers.lua).
if T.mode == 'luajit' then jit.off() end

local ROUNDS = 40

local value = {}
for i = 1, 300 do
	value[i] = {
		id = i, name = 'item' .. i, price = i * 1.25, escaped = 'a\n"b"\0' .. i,
		long = '[[x]]' .. ('y'):rep(i % 7), tags = {'a', 'b', {deep = {true, false}}},
		[i + 0.5] = i % 2 == 0, ['key ' .. i] = -i,
	}
end
local encoded = text.serialize(value)
local small = text.serialize{'nested', {1, 2, 'three'}, x = {y = 'z'}}

local fired = {raise = 0, allocate = 0, decode = 0}
local nested_ok = true

local kinds = {
	raise = function() error('finalizer error', 0) end,
	allocate = function()
		local t = {}
		for i = 1, 200 do t[i] = {('p'):rep(i % 50) .. i} end
	end,
	decode = function()
		local ok, v = pcall(text.unserialize, small)
		if ok and not T.same(v, text.unserialize(small)) then nested_ok = false end
	end,
}
local names = {'raise', 'allocate', 'decode'}

-- Unreachable proxies whose finalizers do `kind` when collected.
local function litter(kind, n)
	for _ = 1, n do
		local p = newproxy(true)
		getmetatable(p).__gc = function()
			fired[kind] = fired[kind] + 1
			kinds[kind]()
		end
	end
end

-- Runs every pending finalizer; stock beta3 raises their errors from collectgarbage.
local function drain()
	local clean = 0
	while clean < 2 do
		clean = pcall(collectgarbage, 'collect') and clean + 1 or 0
	end
end

T.run('decoding while finalizers raise, allocate and decode', function()
	local decoded, errors = 0, 0
	collectgarbage('setpause', 10)
	collectgarbage('setstepmul', 1000)
	for round = 1, ROUNDS do
		local kind = names[round % #names + 1]
		local ok, v = pcall(function()
			litter(kind, kind == 'raise' and 10 or 50)
			return text.unserialize(encoded)
		end)
		drain()
		if ok then
			decoded = decoded + 1
			T.ok(T.same(v, value), 'round ' .. round .. ' (' .. kind .. '): the value decoded is right')
		else
			errors = errors + 1
			T.eq(v, 'finalizer error', 'round ' .. round .. ': only a finalizer error is raised')
		end
	end
	print(('decoded %d times, %d finalizer errors raised'):format(decoded, errors))
	collectgarbage('setpause', 200)
	collectgarbage('setstepmul', 200)
	T.ok(decoded > 0, 'decoded ' .. decoded .. ' times, ' .. errors .. ' finalizer errors')
	T.ok(fired.raise > 0 and fired.allocate > 0 and fired.decode > 0, 'every kind of finalizer ran')
	T.ok(nested_ok, 'decodes inside finalizers gave the right value')
	-- The parser is still sound afterwards.
	T.ok(T.same(text.unserialize(encoded), value), 'a decode after the rounds')
end)

T.run('numbers read as loadstring reads them', function()
	local texts = {
		'1.', '.5', '1.e5', '1e+5', '1E-5', '0.1', '123456789012345678901234567890',
		'1e308', '1e309', '2e-324', '4.9e-324', '2.4703282292062327e-324',
		'2.4703282292062328e-324', '1.7976931348623157e308', '1.7976931348623158e308',
		'9007199254740993', '0x10', '0XfF', '0x' .. ('f'):rep(17), '0x' .. ('1'):rep(40),
		'0x20000000000000100000001', '0x' .. ('0'):rep(30) .. '1',
		'1e1048575', '1e0001048575', '0.' .. ('0'):rep(1048574) .. '1', '1/0', '-1/0', '-0',
		'5e-1/2', '0.' .. ('9'):rep(400), ('1'):rep(900) .. 'e-900',
		'1' .. ('0'):rep(20) .. '.' .. ('0'):rep(20),
	}
	for _, t in ipairs(texts) do
		local want = loadstring('return ' .. t)()
		local ok, got = pcall(text.unserialize, t)
		T.ok(ok and T.same(got, want, true, true), t:sub(1, 40) .. ': got ' .. tostring(got) .. ', want ' .. tostring(want))
	end
	-- What LuaJIT reads no number from, nor does the parser.
	for _, t in ipairs{'1e1048576', '1e99999999999', '0.' .. ('0'):rep(1048575) .. '1', '1e', '0x'} do
		T.eq(loadstring('return ' .. t), nil, t:sub(1, 20) .. ' is no Lua number')
		T.raises('malformed number', text.unserialize, t)
	end
end)

T.finish()
