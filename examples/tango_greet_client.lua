-- The greet client of tango's tutorial: calls the remote function greet.
--   socketloop examples/tango_greet_client.lua [port]      (default 12345)
require'socketloop' -- under stock luajit, the submodules load with the main module
local tango = require'socketloop.tango'

local proxy = assert(tango.client.connect{
	address = 'localhost',
	port = tonumber(arg and arg[1]) or 12345,
})
proxy.greet('Hello', 'Horst')
-- the server exposes _G, so the client may call anything there
print('the server says sqrt(4) is ' .. proxy.math.sqrt(4))
tango.close(proxy)
