-- copas (lua-copas) over LuaSocket: one coroutine per connection, receive('*l')/send.
-- usage: luajit benches/servers/copas.lua PORT
local socket = require'socket'
local copas = require'copas'
local port = tonumber(arg[1]) or error('usage: copas.lua PORT')

local listener = assert(socket.bind('127.0.0.1', port, 1024))
copas.addserver(listener, function(raw)
  local skt = copas.wrap(raw)
  repeat
    local line = skt:receive('*l')
  until not line or not skt:send(line .. '\n')
  raw:close()
end)
io.stderr:write('copas ', tostring(copas._VERSION), ' echo: 127.0.0.1:', port, '\n')
copas.loop()
