-- copas.http on socketloop.http: a copas program fetching from a copas HTTP server in the
-- same process, with the string form, the table form with an ltn12 sink and copas's
-- table of timeouts, and a server that never answers (the receive timeout).
local T = require'testlib'
package.loaded.copas = require'socketloop.copas'
local copas = require'copas'
local socket = require'socket'
local ltn12 = require'socketloop.ltn12'

local server = assert(socket.bind('127.0.0.1', 0))
local _, port = server:getsockname()
copas.addserver(server, copas.handler(function(skt)
	local request = skt:receive()
	while true do
		local header = skt:receive()
		if not header or header == '' then break end
	end
	local path = request:match('^GET (%S+)')
	if path == '/silent' then
		copas.pause(5)
		return
	end
	local body = 'you asked for ' .. path
	skt:send('HTTP/1.1 200 OK\r\nContent-Length: ' .. #body .. '\r\nConnection: close\r\n\r\n' .. body)
end))

copas.addthread(function()
	local base = 'http://127.0.0.1:' .. port
	local body, code = copas.http.request(base .. '/one')
	T.eq(code, 200, 'status')
	T.eq(body, 'you asked for /one', 'string form body')
	local parts = {}
	local ok, code2 = copas.http.request{url = base .. '/two', sink = ltn12.sink.table(parts),
		timeout = {connect = 1, send = 1, receive = 1}}
	T.eq(ok, 1, 'table form')
	T.eq(code2, 200, 'table form status')
	T.eq(table.concat(parts), 'you asked for /two', 'table form body')
	local started = copas.gettime()
	local nothing, err = copas.http.request{url = base .. '/silent', timeout = {receive = 0.2}}
	T.eq(nothing, nil, 'no answer')
	T.eq(err, 'timeout', 'the receive timeout bounds the wait')
	T.ok(copas.gettime() - started < 4, 'gave up before the server answered')
	copas.removeserver(server)
end)
copas.loop()
T.finish()
