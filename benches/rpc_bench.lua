-- Calls per second of socketloop.rpc and socketloop.tango (a benchmark, not a test).
-- Run by benches/rpc_bench.sh, which starts the server and the client as two processes:
--   socketloop benches/rpc_bench.lua server rpc|tango PORT
--   socketloop benches/rpc_bench.lua client rpc|tango PORT CALLERS CONNECTIONS SECONDS
-- The client runs CALLERS threads spread over CONNECTIONS connections, each calling
-- add(i, 1) back to back for SECONDS, and prints one line: calls, seconds, calls/s.
local loop = require'socketloop'
local rpc = require'socketloop.rpc'
local tango = require'socketloop.tango'

local role, module, port = arg[1], arg[2], tonumber(arg[3])
assert(role and (module == 'rpc' or module == 'tango') and port,
	'usage: rpc_bench.lua server|client rpc|tango PORT [CALLERS CONNECTIONS SECONDS]')

local api = {add = function(a, b) return a + b end}

if role == 'server' then
	if module == 'rpc' then
		assert(rpc.newserveronly('127.0.0.1', port, {expose = api}))
	else
		assert(tango.server.new{address = '127.0.0.1', port = port, functab = api})
	end
	loop.start()
	return
end

local callers, connections, seconds = tonumber(arg[4]), tonumber(arg[5]), tonumber(arg[6])
assert(callers and connections and seconds and callers >= connections, 'bad client arguments')

local function connect()
	if module == 'rpc' then
		local s = assert(rpc.newclient('127.0.0.1', port, {expose = {}}))
		return function(i) return s:call('add', i, 1) end, function() s:close() end
	end
	local con = assert(tango.client.connect{address = '127.0.0.1', port = port})
	local add = con.add
	return function(i) return add(i, 1) end, function() tango.close(con) end
end

local links = {}
for c = 1, connections do
	local call, close = connect()
	links[c] = {call = call, close = close}
end

local calls, running = 0, callers
local started = loop.now()
local deadline = started + seconds
for t = 1, callers do
	loop.newthread(function()
		local call = links[(t - 1) % connections + 1].call
		local i = 0
		while loop.now() < deadline do
			i = i + 1
			assert(call(i) == i + 1)
		end
		calls = calls + i
		running = running - 1
	end)
end
while running > 0 do loop.sleep(0.05) end
local elapsed = loop.now() - started
for _, link in ipairs(links) do link.close() end
print(('%d calls in %.2f s: %.0f calls/s'):format(calls, elapsed, calls / elapsed))
