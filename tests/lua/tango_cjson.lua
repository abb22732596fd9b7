-- socketloop.tango with lua-cjson as the serializer on both sides (Debian's lua-cjson).
local loop = require'socketloop'
local tango = require'socketloop.tango'
local cjson = require'cjson'
local T = require'testlib'

T.run('tango with cjson', function()
	local seen
	local srv = assert(tango.server.new{
		address = '127.0.0.1', port = 0,
		functab = {
			add = function(a, b) return a + b end,
			info = function() return {name = 'x', list = {1, 2, 3}} end,
			fail = function() error('json error') end,
			config = {mode = 'fast'},
		},
		serialize = cjson.encode,
		unserialize = function(s)
			seen = s
			return cjson.decode(s)
		end,
	})
	local _, port = srv:getsockname()
	local con = assert(tango.client.connect{
		address = '127.0.0.1', port = port,
		serialize = cjson.encode, unserialize = cjson.decode,
	})
	T.eq(con.add(40, 2), 42, 'call')
	T.eq(seen, '["add",40,2]', 'the request went as JSON')
	local info = con.info()
	T.ok(info.name == 'x' and #info.list == 3 and info.list[3] == 3, 'table result')
	local ok, err = pcall(con.fail)
	T.ok(not ok and err:find('json error', 1, true), 'remote error: ' .. tostring(err))
	ok, err = pcall(con.missing)
	T.ok(not ok and err:find("no such path 'missing'", 1, true), 'missing path')
	T.eq(con.config.mode(), 'fast', 'read a variable')
	con.config.mode('slow')
	T.eq(con.config.mode(), 'slow', 'write a variable')
	tango.close(con)

	-- a cjson server refuses a Lua-text request: cjson.decode raises, the connection closes
	local errors = {}
	local srv2 = assert(tango.server.new{
		address = '127.0.0.1', port = 0, functab = {},
		serialize = cjson.encode, unserialize = cjson.decode,
		onerror = function(e) errors[#errors + 1] = e end,
	})
	local _, port2 = srv2:getsockname()
	local textcon = assert(tango.client.connect{address = '127.0.0.1', port = port2})
	ok, err = pcall(textcon.anything)
	T.ok(not ok and err:find('closed', 1, true), 'Lua-text request to a cjson server: ' .. tostring(err))
	T.ok((errors[1] or ''):find('cannot unserialize the request', 1, true), 'reported: ' .. tostring(errors[1]))
	srv2:close()
	srv:close()
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
