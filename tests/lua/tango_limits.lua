-- Findings 6 and 7 of issue 12, as a peer over loopback: the length line is checked as
-- its bytes arrive (the 11th digit closes the connection, whatever the timeout), error
-- answers carry no heap address, and the refs one connection holds are bounded (option
-- maxrefs) with an error answer over the bound.
local loop = require'socketloop'
local tango = require'socketloop.tango'
local T = require'testlib'
local N = require'testnet'

local function server(options)
	local errors = {}
	options.address, options.port = '127.0.0.1', 0
	options.onerror = function(err) errors[#errors + 1] = err end
	local srv = assert(tango.server.new(options))
	local _, port = srv:getsockname()
	return srv, port, errors
end

T.run('a length line is refused as its 11th digit arrives', function()
	local srv, port, errors = server{message_timeout = 30, functab = {}}
	for _, line in ipairs{'12345678901', string.rep('9', 64)} do
		local skt = assert(loop.connect('127.0.0.1', port))
		skt:settimeout(5)
		-- one digit at a time, no newline ever
		for i = 1, #line do
			if not skt:send(line:sub(i, i)) then break end
			loop.sleep(0.001)
		end
		local data, err = skt:receive('*a')
		T.ok(data == nil and err == 'closed', #line .. ' digits: closed at once (' .. tostring(data or err) .. ')')
		skt:close()
	end
	N.await(function() return #errors >= 2 end, 'the reports')
	T.ok((errors[1] or ''):find('length line too long', 1, true), 'reported: ' .. tostring(errors[1]))
	-- ten digits are still a length line
	local good = assert(tango.client.connect{address = '127.0.0.1', port = port})
	local skt = assert(loop.connect('127.0.0.1', port))
	skt:settimeout(5)
	assert(skt:send('0000000005\n{"x"}'))
	T.ok(tonumber(skt:receive('*l')), 'a ten-digit length line is read and answered')
	skt:close()
	tango.close(good)
	srv:close()
end)

-- Sends one request frame `text` on a raw connection and returns the response text.
local function raw_request(port, text)
	local skt = assert(loop.connect('127.0.0.1', port))
	skt:settimeout(5)
	assert(skt:send(#text .. '\n' .. text))
	local n = tonumber(skt:receive('*l'))
	local resp = n and skt:receive(n)
	skt:close()
	return resp
end

T.run('error answers name values by type, never by address', function()
	local srv, port = server{functab = {
		new_obj = function() return {get = function() return 1 end} end,
		fail = function() error({f = print}) end,
	}}
	for _, req in ipairs{
		'{"tango.ref_call",{}}',
		'{"tango.ref_call",{1,2,3},"get"}',
		'{"tango.ref_call",true}',
		'{"fail"}',
	} do
		local resp = raw_request(port, req)
		T.ok(resp and resp:find('false', 1, true), req .. ': an error answer: ' .. tostring(resp))
		T.ok(resp and not resp:find('0x', 1, true), req .. ': no address in ' .. tostring(resp))
	end
	local resp = raw_request(port, '{"tango.ref_call",{}}')
	T.ok(resp and resp:find('invalid ref id a table', 1, true), 'the id named by its type: ' .. tostring(resp))
	local con = assert(tango.client.connect{address = '127.0.0.1', port = port})
	local id = con.tango.ref_create('new_obj')
	local ok, err = pcall(con.tango.ref_call, id, {})
	T.ok(not ok and tostring(err):find("no method 'a table'", 1, true) and not tostring(err):find('0x', 1, true),
		'a table as the method: ' .. tostring(err))
	tango.close(con)
	srv:close()
end)

T.run('refs per connection are bounded', function()
	local srv, port = server{maxrefs = 5, functab = {new_obj = function() return {} end}}
	local con = assert(tango.client.connect{address = '127.0.0.1', port = port})
	local ids = {}
	for i = 1, 5 do ids[i] = con.tango.ref_create('new_obj') end
	local ok, err = pcall(con.tango.ref_create, 'new_obj')
	T.ok(not ok and tostring(err):find('holds 5 refs, the limit', 1, true), 'the 6th ref is refused: ' .. tostring(err))
	con.tango.ref_release(ids[1])
	con.tango.ref_release(ids[1]) -- twice: counted once
	con.tango.ref_release('no such ref')
	T.eq(type(con.tango.ref_create('new_obj')), 'string', 'a released ref makes room for one')
	ok = pcall(con.tango.ref_create, 'new_obj')
	T.ok(not ok, 'and only one')
	-- the bound is per connection
	local other = assert(tango.client.connect{address = '127.0.0.1', port = port})
	T.eq(type(other.tango.ref_create('new_obj')), 'string', 'another connection has its own')
	tango.close(other)
	tango.close(con)
	srv:close()
	T.raises("maxrefs", tango.server.new, {address = '127.0.0.1', port = 0, maxrefs = -1})
end)

N.finish()
