-- socketloop: one loop thread (coroutine) per connection, LuaSocket-style receive('*l')/send.
-- usage: target/release/socketloop benches/servers/socketloop.lua PORT
local loop = require'socketloop'
local port = tonumber(arg[1]) or error('usage: socketloop.lua PORT')

assert(loop.newserver('127.0.0.1', port, function(skt)
  while true do
    local line = skt:receive('*l')
    if not line or not skt:send(line .. '\n') then break end
  end
  skt:close()
end))
io.stderr:write('socketloop echo: 127.0.0.1:', port, '\n')
-- The runner already runs this chunk as a loop thread; under stock luajit, start the loop.
if not loop.current() then loop.start() end
