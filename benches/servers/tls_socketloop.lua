-- socketloop: the TLS line echo, one loop thread per connection (handshake included).
-- usage: target/release/socketloop benches/servers/tls_socketloop.lua PORT CERT KEY
local loop = require'socketloop'
local port, cert, key = tonumber(arg[1]), arg[2], arg[3]
assert(port and cert and key, 'usage: tls_socketloop.lua PORT CERT KEY')

local ctx = assert(loop.newtls{mode = 'server', certificate = cert, key = key})
assert(loop.newserver('127.0.0.1', port, function(skt)
  while true do
    local line = skt:receive('*l')
    if not line or not skt:send(line .. '\n') then break end
  end
  skt:close()
end, {tls = ctx}))
io.stderr:write('socketloop TLS echo: 127.0.0.1:', port, '\n')
if not loop.current() then loop.start() end
