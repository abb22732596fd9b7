-- Interoperation with tango 0.2 peers: a client and a server that do exactly what tango
-- 0.2's socket backend does (its serializer, its framing, loadstring to read: tango02.lua),
-- talking to our server and our client. That loadstring is the emulated tango peer
-- reading what we send, as tango 0.2 does; socketloop.tango itself never loads what it
-- receives.
local loop = require'socketloop'
local tango = require'socketloop.tango'
local T = require'testlib'
local tango02 = require'tango02'

local same = T.same

-- tango 0.2's serializer, loadstring reader and framing
local serialize02, unserialize02 = tango02.serialize, tango02.unserialize
local send02, receive02 = tango02.send, tango02.receive

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
