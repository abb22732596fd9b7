-- socketloop.rpc calls over one session: values of every type keep their type, count and
-- nils; errors (strings, tables, missing and non-function procedures); eval; newexec
-- with source, parts and functions; misuse.
local loop = require'socketloop'
local rpc = require'socketloop.rpc'
local T = require'testlib'

-- Deep equality of plain values (NaN equals NaN here, 0 and -0 differ).
local function same(a, b) return T.same(a, b, true, true) end

local api = {
	echo = function(...) return ... end,
	count = function(...) return select('#', ...) end,
	three = function() return 'a', nil, 'three' end,
	none = function() end,
	fail = function(msg) error(msg) end,
	fail_table = function() error({code = 42, where = {'deep', 1.5}}) end,
	fail_plain = function() error('plain', 0) end,
	fail_userdata = function() error(io.stdout) end,
	give_function = function() return print end,
	nested = {deeper = {add = function(a, b) return a + b end}},
	value = {answer = 42, list = {1, 2, 3}},
	callable = setmetatable({}, {__call = function(_, x) return 'called', x end}),
	not_fn = 7,
	big = function(n) return string.rep('x', n) end,
}

T.run('rpc calls', function()
	local server = assert(rpc.newserveronly('127.0.0.1', 0, {expose = api}))
	local _, port = server:getsockname()
	local s = assert(rpc.newclient('127.0.0.1', port))

	-- three return values with a nil between, and trailing nils
	local n = select('#', s:call('three'))
	T.eq(n, 3, 'three values')
	local a, b, c = s:call('three')
	T.eq(a, 'a'); T.eq(b, nil); T.eq(c, 'three')
	T.eq(select('#', s:call('echo', nil, nil)), 2, 'trailing nils kept')
	T.eq(select('#', s:call('none')), 0, 'no values')
	T.eq(s:call('count', nil, 1, nil), 3, 'argument count with nils')

	-- every type round trips
	local values = {
		true, false, 0, 1, -1, 255, 65536, 2^31, -2^31, 2^53, -2^53, 2^63, 1e300, -1e-300,
		0.1, 1 / 0, -1 / 0, '', 'text', 'bytes \0\1\255 end', string.rep('long ', 5000),
		{}, {1, 2, 3}, {1, nil, 3}, {a = 1, b = {c = {d = 'deep'}}},
		{[1.5] = 'float key', [true] = 'bool key', [false] = 0, [-7] = 'negative'},
		{[{}] = 'table key'},
	}
	for i, v in ipairs(values) do
		local got = s:call('echo', v)
		if type(v) == 'table' and next(v) ~= nil and type(next(v)) == 'table' then
			T.eq(type(next(got)), 'table', 'table key kept ' .. i)
		else
			T.ok(same(got, v), 'value ' .. i .. ' round trip: ' .. tostring(v))
		end
	end
	local nan = s:call('echo', 0 / 0)
	T.ok(nan ~= nan, 'NaN round trip')
	local negzero = s:call('echo', -0.0)
	T.eq(1 / negzero, -1 / 0, '-0.0 keeps its sign')
	local mixed = s:call('echo', {10, 20, x = 'y', [3] = 30, [10] = 100})
	T.ok(same(mixed, {10, 20, 30, x = 'y', [10] = 100}), 'mixed table')
	local shared = {1}
	local twice = s:call('echo', {shared, shared})
	T.ok(same(twice, {{1}, {1}}), 'shared subtable sent twice')
	T.eq(s:call('nested.deeper.add', 2, 3), 5, 'dotted path')
	T.eq(select(2, s:call('callable', 'x')), 'x', 'callable table')

	-- errors raised remotely
	local ok, err = pcall(s.call, s, 'fail', 'boom')
	T.ok(not ok, 'string error raised')
	T.ok(type(err) == 'string' and err:find('^remote: ') and err:find('boom', 1, true),
		'string error has the remote prefix: ' .. tostring(err))
	ok, err = pcall(s.call, s, 'fail_plain')
	T.eq(err, 'remote: plain', 'string error exactly prefixed')
	ok, err = pcall(s.call, s, 'fail_table')
	T.ok(not ok and same(err, {code = 42, where = {'deep', 1.5}}), 'error table round trip')
	ok, err = pcall(s.call, s, 'fail_userdata')
	-- named by its type: its tostring ('file (0x...)') would hand the peer an address
	T.eq(err, 'remote: a userdata', 'unserializable error sent as its type')
	ok, err = pcall(s.call, s, 'give_function')
	T.ok(not ok and err:find('results could not be serialized', 1, true)
		and err:find('function', 1, true), 'unserializable result: ' .. tostring(err))

	-- missing and non-function procedures
	T.eq(select(2, s:call('missing')), 'function not existing')
	T.eq(select('#', s:call('missing')), 2, 'nil, err')
	T.eq(select(2, s:call('nested.missing.add')), 'function not existing')
	T.eq(select(2, s:call('not_fn.x')), 'function not existing', 'path through a number')
	T.eq(select(2, s:call('nested..add')), 'function not existing', 'empty part')
	T.eq(select(2, s:call('')), 'function not existing', 'empty name')
	T.eq(select(2, s:call('not_fn')), 'not a function')
	T.eq(select(2, s:call('value')), 'not a function')
	T.eq(select(2, s:call('print')), 'function not existing', 'only the exposed table is reachable')

	-- eval
	T.eq(s:eval('value.answer'), 42)
	T.ok(same(s:eval('value.list'), {1, 2, 3}), 'eval a table')
	T.eq(s:eval('value.nothing'), nil, 'eval of a missing variable')
	T.eq(select('#', s:eval('value.nothing')), 1, 'eval returns one value')
	ok, err = pcall(s.eval, s, 'echo')
	T.ok(not ok and err:find('could not be serialized', 1, true), 'eval of a function raises')

	-- newexec: source, parts, function without upvalues
	local f = s:newexec('local a, b = ... return a + b, select("#", ...)')
	local sum, count = f(40, 2, nil)
	T.eq(sum, 42); T.eq(count, 3, 'newexec arguments keep their count')
	T.eq(f(1, 1), 2, 'newexec function reusable')
	T.eq(s:newexec{'return ', '"a"', ' .. ', '...'}('b'), 'ab', 'table of parts')
	T.eq(s:newexec(function(x) return x * 2, type(print) end)(21), 42, 'function as bytecode')
	ok, err = pcall(s:newexec('error("inside")'))
	T.ok(not ok and err:find('^remote: ') and err:find('inside', 1, true), 'newexec error: ' .. tostring(err))
	ok, err = pcall(s:newexec('this is not lua'))
	T.ok(not ok and err:find('^remote: '), 'newexec compile error: ' .. tostring(err))

	-- misuse raises naming the function and argument
	local up = 1
	T.raises("bad argument #1 to 'newexec' (the function has upvalues)", s.newexec, s, function() return up end)
	T.raises("bad argument #1 to 'newexec'", s.newexec, s, print)
	T.raises("bad argument #1 to 'newexec' (part 2 is a boolean", s.newexec, s, {'a', true})
	T.raises("bad argument #1 to 'newexec'", s.newexec, s, 42)
	T.raises("bad argument #1 to 'call' (string expected, got number)", s.call, s, 1)
	T.raises("bad argument #1 to 'eval' (string expected, got nil)", s.eval, s)
	T.raises("bad argument #3 to 'call' (cannot serialize a function value)", s.call, s, 'echo', 1, print)
	T.raises("bad argument #2 to 'call' (cannot serialize a table that contains itself)", s.call, s, 'echo',
		(function() local t = {} t.t = t return t end)())
	T.raises("bad argument #2 to 'call' (tables nested deeper than 100 levels)", s.call, s, 'echo',
		(function() local t = {} for _ = 1, 150 do t = {t} end return t end)())
	T.raises("bad argument #2 to 'newexec function' (cannot serialize a userdata value)",
		s:newexec('return 1'), 1, io.stdout)
	local many = {}
	for i = 1, 5000 do many[i] = i end
	T.raises("bad arguments to 'call' (more than 4096 values", s.call, s, 'echo', unpack(many, 1, 5000))
	T.eq(select('#', s:call('echo', unpack(many, 1, 4096))), 4096, '4096 values pass')
	T.eq(s:call('echo', 'still fine'), 'still fine', 'session usable after misuse')

	-- a big payload (several socket reads) both ways
	local big = string.rep('0123456789', 200000)
	T.eq(s:call('echo', big), big, '2 MB argument and result')
	T.eq(#s:call('big', 3000000), 3000000, '3 MB result')

	s:close()
	T.eq(select(2, s:call('echo', 1)), 'closed', 'call after close')
	T.eq(s:close(), 1, 'close twice')
	server:close()
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
