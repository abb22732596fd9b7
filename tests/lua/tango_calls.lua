-- socketloop.tango proxies: calls at any depth, results with nils, remote errors,
-- missing paths, reading and writing variables with access on and off, refs, several
-- threads sharing a connection, timeouts and closing.
local loop = require'socketloop'
local tango = require'socketloop.tango'
local T = require'testlib'

local same = T.same

local Counter = {}
Counter.__index = Counter
function Counter:add(n) self.n = self.n + n return self.n end
function Counter:get() return self.n end

local held
local served = {
	greet = function(greeting, name) return greeting .. ', ' .. name .. '!' end,
	three = function() return 'a', nil, 'three' end,
	echo = function(...) return ... end,
	nested = {method = {name = function() return 'deep' end}},
	fail = function(msg) error(msg) end,
	fail_table = function() error({code = 7, list = {1, 2}}) end,
	friends = {'Horst', 'Grete'},
	flag = true,
	count = 0,
	new_counter = function(start) return setmetatable({n = start}, Counter) end,
	new_file = function() return io.tmpfile() end,
	number = function() return 5 end,
	hang = function() held = loop.current() loop.suspend() end,
	math = math,
}

local function server(config)
	config.address = config.address or '127.0.0.1'
	config.port = 0
	config.functab = config.functab or served
	local srv = assert(tango.server.new(config))
	local _, port = srv:getsockname()
	return srv, port
end

T.run('tango calls', function()
	local srv, port = server{}
	local con = assert(tango.client.connect{address = '127.0.0.1', port = port, timeout = 5})
	T.eq(con.greet('Hello', 'Horst'), 'Hello, Horst!', 'greet')
	T.eq(con.math.sqrt(16), 4, 'nested function')
	T.eq(con.nested.method.name(), 'deep', 'three levels')
	local a, b, c = con.three()
	T.ok(a == 'a' and b == nil and c == 'three', 'a nil between results')
	T.ok(same({con.echo(1, 'two', {3}, true)}, {1, 'two', {3}, true}), 'arguments and results')

	local ok, err = pcall(con.fail, 'boom')
	T.ok(not ok and err:find('boom', 1, true), 'remote string error raised: ' .. tostring(err))
	ok, err = pcall(con.fail_table)
	T.ok(not ok and same(err, {code = 7, list = {1, 2}}), 'remote error table raised')
	ok, err = pcall(con.missing)
	T.ok(not ok and err:find("no such path 'missing'", 1, true), 'missing path named: ' .. tostring(err))
	ok, err = pcall(con.nested.missing.deeper, 1)
	T.ok(not ok and err:find("no such path 'nested.missing.deeper'", 1, true), 'missing nested path named')
	ok, err = pcall(con.friends.x)
	T.ok(not ok and err:find("no such path 'friends.x'", 1, true), 'path through a non-function')
	ok, err = pcall(con)
	T.ok(not ok and err:find('root proxy', 1, true), 'the root proxy is not callable')

	-- remote variables, read_access and write_access on (the defaults)
	local friends = con.friends()
	T.ok(same(friends, {'Horst', 'Grete'}), 'read a table')
	table.insert(friends, 'Susi')
	con.friends(friends)
	T.ok(same(served.friends, {'Horst', 'Grete', 'Susi'}), 'wrote a table')
	T.eq(con.flag(), true, 'read a boolean')
	con.flag(false)
	T.eq(served.flag, false, 'wrote false')
	T.eq(con.flag(), false, 'read false back')
	con.count(41)
	T.eq(served.count, 41)

	-- several threads share one connection, one request at a time
	local done = 0
	for t = 1, 20 do
		loop.newthread(function()
			for i = 1, 10 do
				T.eq(con.echo(t * 100 + i), t * 100 + i, 'shared connection answer')
			end
			done = done + 1
		end)
	end
	for _ = 1, 1000 do
		if done == 20 then break end
		loop.sleep(0.005)
	end
	T.eq(done, 20, 'threads sharing a connection')

	-- several connections
	local con2 = assert(tango.client.connect{interface = '127.0.0.1', port = port})
	T.eq(con2.greet('Hi', 'Grete'), 'Hi, Grete!', 'second connection (interface key)')
	tango.close(con2)
	ok, err = pcall(con2.greet, 'x', 'y')
	T.ok(not ok and err:find('closed', 1, true), 'closed connection raises: ' .. tostring(err))
	T.eq(con.greet('Still', 'there'), 'Still, there!', 'other connection unaffected')
	tango.close(con)
	srv:close()
end)

T.run('tango read and write access off', function()
	served.friends = {'Horst'}
	local configs = {
		{read_access = false, write_access = false},
		{read_access = true, write_access = false},
		{read_access = false, write_access = true},
	}
	for _, config in ipairs(configs) do
		local what = ('read %s, write %s'):format(tostring(config.read_access), tostring(config.write_access))
		local srv, port = server(config)
		local con = assert(tango.client.connect{address = '127.0.0.1', port = port})
		local ok, got = pcall(con.friends)
		if config.read_access then
			T.ok(ok and same(got, {'Horst'}), what .. ': read allowed')
		else
			T.ok(not ok and got:find("no read access to 'friends'", 1, true), what .. ': read refused: ' .. tostring(got))
		end
		local err
		ok, err = pcall(con.friends, {'Mallory'})
		if config.write_access then
			T.ok(ok and same(served.friends, {'Mallory'}), what .. ': write allowed')
			served.friends = {'Horst'}
		else
			T.ok(not ok and err:find("no write access to 'friends'", 1, true), what .. ': write refused: ' .. tostring(err))
			T.ok(same(served.friends, {'Horst'}), what .. ': value unchanged')
		end
		T.eq(con.greet('Hi', 'there'), 'Hi, there!', what .. ': calls still allowed')
		-- as tango 0.2: a write creates a new key when writes are allowed
		ok, err = pcall(con.missing, 1)
		if config.write_access then
			T.ok(ok and served.missing == 1, what .. ': writing a new key creates it: ' .. tostring(err))
			served.missing = nil
		else
			T.ok(not ok and err:find("no write access to 'missing'", 1, true), what .. ': writing a new key refused: ' .. tostring(err))
			T.eq(served.missing, nil, what .. ': nothing created')
		end
		tango.close(con)
		srv:close()
	end
end)

T.run('tango refs', function()
	local srv, port = server{}
	local con = assert(tango.client.connect{address = '127.0.0.1', port = port})
	local counter = tango.ref(con.new_counter, 10)
	T.eq(counter:add(5), 15, 'method on a remote table')
	T.eq(counter:add(1), 16)
	T.eq(counter:get(), 16)
	local other = tango.ref(con.new_counter, 0)
	T.eq(other:add(1), 1, 'independent objects')
	T.eq(counter:get(), 16)
	local f = tango.ref(con.new_file)
	f:write('hello\n', 'world\n')
	f:seek('set')
	T.eq(f:read('*l'), 'hello', 'method on a remote userdata')
	T.eq(f:read('*l'), 'world')
	f:close()
	tango.unref(f)
	tango.unref(counter)
	local ok, err = pcall(counter.get, counter)
	T.ok(not ok, 'released ref cannot be used: ' .. tostring(err))
	T.eq(other:get(), 1, 'other ref still valid')
	ok, err = pcall(tango.ref, con.number)
	T.ok(not ok and err:find('not a table or userdata', 1, true), 'ref of a non-object: ' .. tostring(err))
	ok, err = pcall(tango.ref, con.missing)
	T.ok(not ok and err:find("no such path 'missing'", 1, true), 'ref of a missing path')
	ok, err = pcall(other.nomethod, other)
	T.ok(not ok and err:find("no method 'nomethod'", 1, true), 'missing method: ' .. tostring(err))
	T.raises("bad argument #1 to 'ref' (tango proxy expected, got number)", tango.ref, 1)
	T.raises("bad argument #1 to 'unref' (tango ref expected, got table)", tango.unref, {})
	-- the wire requests, as tango 0.2 clients send them
	local id = con.tango.ref_create('new_counter', 3)
	T.eq(type(id), 'string', 'ref_create returns an id string')
	T.eq(con.tango.ref_call(id, 'add', 4), 7, 'ref_call')
	con.tango.ref_release(id)
	T.ok(not pcall(con.tango.ref_call, id, 'get'), 'ref_release')
	tango.close(con)
	srv:close()
end)

T.run('tango client timeout, config checks', function()
	local srv, port = server{}
	local con = assert(tango.client.connect{address = '127.0.0.1', port = port, timeout = 0.1})
	local ok, err = pcall(con.hang)
	T.ok(not ok and err:find('timeout', 1, true), 'timeout raised: ' .. tostring(err))
	ok, err = pcall(con.greet, 'a', 'b')
	T.ok(not ok and err:find('closed', 1, true), 'connection closed after a timeout')
	loop.resume(held)
	T.raises("bad argument #1 to 'connect' (unknown config key 'adress')", tango.client.connect, {adress = 'x'})
	T.raises("bad argument #1 to 'connect' (config key 'port' must be a number)", tango.client.connect, {port = 'x'})
	T.raises("bad argument #1 to 'new' (unknown config key 'prot')", tango.server.new, {prot = 1})
	T.raises("bad argument #1 to 'new' (config key 'read_access' must be a boolean)", tango.server.new, {read_access = 1})
	T.raises("bad argument #1 to 'new' (config key 'message_timeout' must be a positive number)",
		tango.server.new, {message_timeout = 0})
	T.raises("bad argument #1 to 'loop' (unknown config key 'x')", tango.server.loop, {x = 1})
	local c, e = tango.client.connect{address = '127.0.0.1', port = 1}
	T.eq(c, nil, 'connect failure returns nil')
	T.eq(e, 'connection refused')
	srv:close()
	T.eq(select(2, tango.client.connect{address = '127.0.0.1', port = port}), 'connection refused',
		'srv:close() stops listening')
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
