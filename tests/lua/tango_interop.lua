-- Interoperation with tango 0.2 peers: a client and a server that do exactly what tango
-- 0.2's socket backend does (its serializer, its framing, loadstring to read), talking
-- to our server and our client. The loadstring here is the emulated tango peer reading
-- what we send, as tango 0.2 does; socketloop.tango itself never loads what it receives.
local loop = require'socketloop'
local tango = require'socketloop.tango'
local T = require'testlib'

local function same(a, b)
	if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end
	for k, v in pairs(a) do if not same(v, b[k]) then return false end end
	for k in pairs(b) do if a[k] == nil then return false end end
	return true
end

-- tango/utils/serialization.lua of tango 0.2
local function serialize02(tbl)
	local function valtostr(v)
		if type(v) == 'string' then
			v = v:gsub('\n', '\\n')
			if v:gsub("[^'\"]", ''):match('^"+$') then return "'" .. v .. "'" end
			return '"' .. v:gsub('"', '\\"') .. '"'
		end
		return type(v) == 'table' and serialize02(v) or tostring(v)
	end
	local function keytostr(k)
		if type(k) == 'string' and k:match('^[_%a][_%a%d]*$') then return k end
		return '[' .. valtostr(k) .. ']'
	end
	local result, done = {}, {}
	for k, v in ipairs(tbl) do result[#result + 1] = valtostr(v); done[k] = true end
	for k, v in pairs(tbl) do
		if not done[k] then result[#result + 1] = keytostr(k) .. '=' .. valtostr(v) end
	end
	return '{' .. table.concat(result, ',') .. '}'
end
local function unserialize02(s) return loadstring('return ' .. s)() end

-- tango/utils/socket_message.lua of tango 0.2
local function send02(skt, message)
	assert(skt:send(tostring(#message) .. '\n'))
	assert(skt:send(message))
end
local function receive02(skt)
	local len = assert(skt:receive('*l'))
	return assert(skt:receive(assert(tonumber(len))))
end

T.run('a tango 0.2 client calls our server', function()
	local state = {friends = {'Horst'}}
	local srv = assert(tango.server.new{address = '127.0.0.1', port = 0, functab = {
		greet = function(a, b) return a .. ' ' .. b end,
		lines = function() return 'one\ntwo', 'say "x"', "it's" end,
		fail = function() error('failed here', 0) end,
		state = state,
		new_counter = function() return {n = 0, inc = function(self) self.n = self.n + 1 return self.n end} end,
	}})
	local _, port = srv:getsockname()
	local skt = assert(loop.connect('127.0.0.1', port))
	local function call(...)
		send02(skt, serialize02({...}))
		return unserialize02(receive02(skt))
	end
	T.ok(same(call('greet', 'Hello', 'Horst'), {true, 'Hello Horst'}), 'call')
	T.ok(same(call('lines'), {true, 'one\ntwo', 'say "x"', "it's"}), 'strings with newlines and quotes')
	T.ok(same(call('fail'), {false, 'failed here'}), 'error response')
	T.ok(same(call('state.friends'), {true, {'Horst'}}), 'read')
	T.ok(same(call('state.friends', {'Horst', 'Grete'}), {true}), 'write')
	T.ok(same(state.friends, {'Horst', 'Grete'}), 'written')
	local created = call('tango.ref_create', 'new_counter')
	T.eq(created[1], true, 'ref_create')
	T.ok(same(call('tango.ref_call', created[2], 'inc'), {true, 1}), 'ref_call')
	T.ok(same(call('tango.ref_release', created[2]), {true}), 'ref_release')
	local missing = call('nope')
	T.ok(missing[1] == false and missing[2]:find("'nope'", 1, true), 'missing path names it')
	skt:close()
	srv:close()
end)

T.run('our client calls a tango 0.2 server', function()
	local functab = {
		greet = function(a, b) return a .. ' ' .. b end,
		lines = function() return 'one\ntwo', 'say "x"' end,
		fail = function() error('failed there', 0) end,
	}
	-- tango 0.2's copas server loop, with its dispatcher's call path
	local srv = assert(loop.newserver('127.0.0.1', 0, function(skt)
		while true do
			local ok, request = pcall(receive02, skt)
			if not ok then break end
			request = unserialize02(request)
			local f = functab
			for part in request[1]:gmatch('[%w_]+') do f = f[part] end
			send02(skt, serialize02({pcall(f, unpack(request, 2))}))
		end
		skt:close()
	end))
	local _, port = srv:getsockname()
	local con = assert(tango.client.connect{address = '127.0.0.1', port = port})
	T.eq(con.greet('Hello', 'Horst'), 'Hello Horst', 'call')
	local a, b = con.lines()
	T.ok(a == 'one\ntwo' and b == 'say "x"', 'tango 0.2 string quoting read back')
	local ok, err = pcall(con.fail)
	T.ok(not ok and err:find('failed there', 1, true), 'error raised')
	tango.close(con)
	srv:close()
end)

T.eq(loop.stats().pending, 0, 'nothing left parked')
T.finish()
