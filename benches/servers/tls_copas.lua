-- copas (lua-copas 1.x) over LuaSec (lua-sec): the TLS line echo, one coroutine per
-- connection. copas 1.x knows no TLS: LuaSec's 'wantread'/'wantwrite' are turned into
-- the 'timeout' copas waits on, and the handshake waits through copas.receive/send on a
-- stand-in object for the same descriptor.
-- usage: luajit benches/servers/tls_copas.lua PORT CERT KEY
local socket = require'socket'
local copas = require'copas'
local ssl = require'ssl'
local port, cert, key = tonumber(arg[1]), arg[2], arg[3]
assert(port and cert and key, 'usage: tls_copas.lua PORT CERT KEY')

local ctx = assert(ssl.newcontext{mode = 'server', protocol = 'any', certificate = cert,
  key = key, options = 'all'})

local function as_timeout(a, b, c)
  if b == 'wantread' or b == 'wantwrite' then b = 'timeout' end
  return a, b, c
end

-- LuaSec's connection as copas 1.x expects a socket to answer.
local Conn = {}
Conn.__index = Conn
function Conn:getfd() return self.c:getfd() end
function Conn:dirty() return self.c:dirty() end
function Conn:settimeout(t) return self.c:settimeout(t) end
function Conn:receive(p, prefix) return as_timeout(self.c:receive(p, prefix)) end
function Conn:send(d, i, j) return as_timeout(self.c:send(d, i, j)) end
function Conn:close() return self.c:close() end

-- Parks the coroutine until `c`'s descriptor is readable (or writable).
local function wait(c, writable)
  local first = true
  local standin = {getfd = function() return c:getfd() end, dirty = function() return false end,
    close = function() return c:close() end}
  function standin.receive()
    if first then first = false return nil, 'timeout' end
    return ''
  end
  function standin.send()
    if first then first = false return nil, 'timeout', 0 end
    return 1
  end
  if writable then copas.send(standin, 'x') else copas.receive(standin, 1) end
end

local listener = assert(socket.bind('127.0.0.1', port, 1024))
copas.addserver(listener, function(raw)
  local c = assert(ssl.wrap(raw, ctx))
  c:settimeout(0)
  while true do
    local ok, err = c:dohandshake()
    if ok then break end
    if err ~= 'wantread' and err ~= 'wantwrite' then c:close() return end
    wait(c, err == 'wantwrite')
  end
  local skt = copas.wrap(setmetatable({c = c}, Conn))
  repeat
    local line = skt:receive('*l')
  until not line or not skt:send(line .. '\n')
  c:close()
end)
io.stderr:write('copas ', tostring(copas._VERSION), ' + LuaSec TLS echo: 127.0.0.1:', port, '\n')
copas.loop()
