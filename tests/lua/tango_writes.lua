-- tango 0.2's writes: with write_access on, a write assigns at its path, creating the
-- last key when the table that holds it exists; only a missing parent is an error. The
-- option strict_writes (off by default) refuses new keys.
local tango = require'socketloop.tango'
local T = require'testlib'

local function serve(config)
	config.address, config.port = '127.0.0.1', 0
	local srv = assert(tango.server.new(config))
	local _, port = srv:getsockname()
	local con = assert(tango.client.connect{address = '127.0.0.1', port = port, timeout = 5})
	return srv, con
end

T.run('tango writes create the last key', function()
	local served = {abc = {tab = {}}}
	local srv, con = serve{functab = served}
	con.x(4)
	T.eq(served.x, 4, 'con.x(4) made x')
	T.eq(con.x(), 4, 'and it reads back')
	con.abc.tab.num(1)
	T.eq(served.abc.tab.num, 1, 'num created in the existing abc.tab')
	con.abc.tab.list({1, 2, 'three'})
	T.ok(T.same(served.abc.tab.list, {1, 2, 'three'}), 'a table value created')
	con.x(false)
	T.eq(served.x, false, 'an existing key overwritten with false')
	local ok, err = pcall(con.missing.parent.key, 1)
	T.ok(not ok and err:find("no such path 'missing.parent.key'", 1, true), 'missing parent refused: ' .. tostring(err))
	T.eq(served.missing, nil, 'nothing made for the missing parent')
	ok, err = pcall(con.x.y, 1)
	T.ok(not ok and err:find("no such path 'x.y'", 1, true), 'a parent that is not a table refused: ' .. tostring(err))
	ok, err = pcall(con.nothing)
	T.ok(not ok and err:find("no such path 'nothing'", 1, true), 'reading a missing key is still an error')
	tango.close(con)
	srv:close()
end)

T.run('tango writes into _G', function()
	local srv, con = serve{functab = _G}
	con.tango_writes_global(4)
	T.eq(rawget(_G, 'tango_writes_global'), 4, 'a new global')
	rawset(_G, 'tango_writes_global', nil)
	tango.close(con)
	srv:close()
end)

T.run('tango strict_writes refuses new keys', function()
	local served = {old = 1, t = {}}
	local srv, con = serve{functab = served, strict_writes = true}
	con.old(2)
	T.eq(served.old, 2, 'an existing key is written')
	local ok, err = pcall(con.t.new, 1)
	T.ok(not ok and err:find("no such path 't.new'", 1, true), 'a new key refused: ' .. tostring(err))
	T.eq(served.t.new, nil, 'nothing created')
	tango.close(con)
	srv:close()
	local ok2, err2 = pcall(tango.server.new, {address = '127.0.0.1', port = 0, functab = {}, strict_writes = 'yes'})
	T.ok(not ok2 and tostring(err2):find('strict_writes', 1, true), 'the option is checked: ' .. tostring(err2))
end)

T.finish()
