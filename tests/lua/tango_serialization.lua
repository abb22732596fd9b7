-- socketloop.tango's default serialization: Lua constructor text that tango 0.2 peers
-- read with loadstring, and a parser of that text that runs nothing.
local loop = require'socketloop'
local tango = require'socketloop.tango'
local T = require'testlib'

local serialize, unserialize = tango.serialize, tango.unserialize

-- Deep equality of plain values (NaN equals NaN here).
local function same(a, b) return T.same(a, b, true) end

local function parses(text, want, what)
	local ok, got = pcall(unserialize, text)
	T.ok(ok and same(got, want), (what or text) .. ' parses: ' .. tostring(got))
end

local function refuses(text, want, what)
	local ok, err = pcall(unserialize, text)
	T.ok(not ok and type(err) == 'string' and err:find(want, 1, true),
		(what or text) .. ' is refused with "' .. want .. '": ' .. tostring(err))
end

-- tango 0.2's own serializer (tango/utils/serialization.lua), to check we read what real
-- tango peers send.
local tango02 = require'tango02'.serialize

T.run('tango text round trips', function()
	local values = {
		{}, {1, 2, 3}, {'greet', 'Hello', 'Horst'}, {true, false}, {1, nil, 3},
		{a = 1, b = {c = {d = 'deep'}}, ['with space'] = 1, ['end'] = 'reserved'},
		{[1.5] = 'f', [true] = 't', [-1] = 'neg', [0] = 'zero', [100] = 'far'},
		{0.1, -0.5, 1e300, -1e-300, 2^53, 2^60, -2^63, 123456789012, 1 / 0, -1 / 0},
		{'quotes \' and "', 'newline\nand\rreturn', 'nul \0 and \1\2\31 and \127\255', 'tab\tend', '\\'},
		{string.rep('long ', 1000)}, {{{{{}}}}}, 'a plain string', 42, true,
	}
	for i, v in ipairs(values) do
		local text = serialize(v)
		local ok, back = pcall(unserialize, text)
		T.ok(ok and same(back, v), 'round trip ' .. i .. ': ' .. text:sub(1, 60))
		-- what a tango 0.2 peer does with our text
		local f = loadstring('return ' .. text)
		T.ok(f and same(f(), v), 'tango 0.2 (loadstring) reads round trip ' .. i)
	end
	local nan = unserialize(serialize({0 / 0}))[1]
	T.ok(nan ~= nan, 'NaN round trip')
	local packed = (function(...) return {true, ...} end)('a', nil, 'three')
	T.eq(table.maxn(unserialize(serialize(packed))), 4, 'values after a nil kept')
	T.ok(serialize({['end'] = 1}):find('["end"]=1', 1, true), 'reserved words quoted as keys')
	T.raises('cannot serialize a function value', serialize, {print})
	T.raises('cannot serialize a userdata value', serialize, {io.stdout})
	local cycle = {}
	cycle[1] = cycle
	T.raises('cannot serialize a table that contains itself', serialize, cycle)
	local deep = {}
	for _ = 1, 200 do deep = {deep} end
	T.raises('nested deeper than 100 levels', serialize, deep)
end)

T.run('tango text from tango 0.2 peers', function()
	local samples = {
		{'greet', 'Hello', 'Horst'}, {true, 'line one\nline two'}, {'say "hi"'}, {"it's"},
		{'both \' and "'}, {true, {x = 1, y = {2, 3}}, [5] = 'sparse'}, {false, 'error text'},
		{'math.sqrt', 4}, {1.5, -2, 1e10},
	}
	for i, v in ipairs(samples) do
		parses(tango02(v), v, 'tango 0.2 sample ' .. i)
	end
	-- tango 0.2 writes tostring() of special numbers
	local t = unserialize('{inf,-inf,nan,-nan}')
	T.ok(t[1] == 1 / 0 and t[2] == -1 / 0 and t[3] ~= t[3] and t[4] ~= t[4], 'inf, -inf, nan')
end)

T.run('tango text grammar', function()
	parses([["\a\b\f\n\r\t\v\\\"\'"]], '\a\b\f\n\r\t\v\\"\'')
	parses([["\65\066\0671\x41\u{48}\u{20AC}"]], 'AB' .. 'C1' .. 'AH' .. '\226\130\172')
	parses('"line\\\ncontinued"', 'line\ncontinued', 'backslash-newline')
	parses('"a\\z   \n  b"', 'ab', '\\z skips white space')
	parses("'single'", 'single')
	parses('[[long\nstring]]', 'long\nstring')
	parses('[[\nfirst newline dropped]]', 'first newline dropped')
	parses('[==[has ]] inside]==]', 'has ]] inside')
	parses('{ 1 ; 2 , 3 , }', {1, 2, 3}, 'separators and a trailing one')
	parses('{[ [[k]] ] = [[v]]}', {k = 'v'}, 'long strings as key and value')
	parses('{x=1,["y"]=2,[3]=3,[4.5]=4,[true]=5}', {x = 1, y = 2, [3] = 3, [4.5] = 4, [true] = 5})
	parses('{0x10, 0XfF, 1e3, 1.5E-1, .5, 5., -3, - 4, 1/0, -1/0}',
		{16, 255, 1000, 0.15, 0.5, 5, -3, -4, 1 / 0, -1 / 0})
	T.ok(unserialize('0/0') ~= unserialize('0/0'), '0/0 is NaN')
	parses('  \t\n{ a = { b = { } } }  \n', {a = {b = {}}}, 'white space')
	parses('nil', nil)
	parses('true', true)
	parses('{nil, nil, 3}', {[3] = 3})
	local deep = string.rep('{', 100) .. string.rep('}', 100)
	T.ok(pcall(unserialize, deep), '100 levels')
	refuses(string.rep('{', 101) .. string.rep('}', 101), 'tables nested deeper than 100 levels')
	T.ok(not pcall(unserialize, string.rep('{', 11) .. string.rep('}', 11), 10), 'maxdepth argument')
end)

T.run('tango text refuses code and never runs it', function()
	local target = os.tmpname()
	os.remove(target)
	local touch = 'os.execute("touch ' .. target .. '")'
	local attacks = {
		'{' .. touch .. '}', touch, '{x=' .. touch .. '}', '{[' .. touch .. ']=1}',
		'{(function() ' .. touch .. ' end)()}', '{loadstring([[' .. touch .. ']])()}',
		'{1, ' .. touch .. '}', 'return {' .. touch .. '}', '{' .. touch .. ';}',
		'{x=1}' .. touch, '{"a"}; ' .. touch, '{f"x"}', '{os.exit}',
	}
	for _, text in ipairs(attacks) do
		local ok, err = pcall(unserialize, text)
		T.ok(not ok and err:find('cannot parse byte', 1, true), 'refused: ' .. text .. ' (' .. tostring(err) .. ')')
	end
	T.eq(io.open(target), nil, 'the file was never created')
	refuses('{os.execute("x")}', "cannot parse byte 2: unexpected 'os'")
	refuses('{"a".."b"}', "unexpected '.'")
	refuses('{1+1}', "unexpected '+'")
	refuses('{1 2}', "unexpected '2'")
	refuses('{true false}', "unexpected 'false'")
	refuses('{a==1}', "unexpected 'a'")
	refuses('{...}', 'malformed number')
	refuses('{--[[c]] 1}', 'unexpected comment')
	refuses('{function() end}', "unexpected 'function'")
	refuses('{', 'unexpected end')
	refuses('}', "unexpected '}'")
	refuses('{}}', "unexpected '}' after the value")
	refuses('', 'unexpected end')
	refuses('"open', 'unfinished string')
	refuses('"line\nbreak"', 'unfinished string')
	refuses('[[open', 'unfinished long string')
	refuses('"\\q"', 'invalid escape')
	refuses('"\\256"', 'escape too large')
	refuses('"\\xZZ"', 'malformed \\x escape')
	refuses('"\\u{110000}"', 'malformed \\u escape')
	refuses('{[nil]=1}', 'table key is nil')
	refuses('{[0/0]=1}', 'table key is NaN')
	refuses('{[1]}', "unexpected ']'")
	refuses('1e', 'malformed number')
	refuses('12abc', 'malformed number')
	refuses('1/x', 'malformed number')
	T.raises('cannot parse a table, string expected', unserialize, {})
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
