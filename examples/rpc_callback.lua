-- socketloop.rpc both ways: the client calls the server's `sum`, and while it runs the
-- server calls back into the client (`progress`, `fetch`) over the same connection.
-- Both ends run in this one process, as loop threads:
--   socketloop examples/rpc_callback.lua
local loop = require'socketloop'
local rpc = require'socketloop.rpc'

-- The server: sums numbers it asks the calling client for, one at a time.
local server_api = {}
function server_api.sum(n)
	local client = rpc.caller() -- the session of the client whose call this is
	local total = 0
	for i = 1, n do
		total = total + client:call('fetch', i)
		client:call('progress', i, n)
	end
	return total
end

local server = assert(rpc.newserveronly('127.0.0.1', 0, {expose = server_api}))
local _, port = server:getsockname()
print(('server listening on 127.0.0.1:%d'):format(port))

-- The client: exposes what the server calls back.
loop.newthread(function()
	local client_api = {
		fetch = function(i) return i * i end,
		progress = function(i, n) print(('  client: the server has %d of %d'):format(i, n)) end,
	}
	local session = assert(rpc.newclient('127.0.0.1', port, {expose = client_api}))
	local total = session:call('sum', 5)
	print('client: sum of squares 1..5 = ' .. total)
	session:close()
	server:close()
end)

loop.start()
