-- The greet server of tango's tutorial, on socketloop:
--   socketloop examples/tango_greet_server.lua [port]      (default 12345)
-- then: socketloop examples/tango_greet_client.lua [port]
-- It serves _G (tango's default) on localhost (socketloop.tango's default address).
require'socketloop' -- under stock luajit, the submodules load with the main module
local tango = require'socketloop.tango'
io.stdout:setvbuf('line') -- greetings show up at once even when stdout is a file

greet = function(...)
	print(...)
end

tango.server.loop{
	port = tonumber(arg and arg[1]) or 12345,
}
