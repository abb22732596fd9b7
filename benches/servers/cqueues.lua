-- cqueues (lua-cqueues): one coroutine per connection, read('*l') / write + flush.
-- usage: luajit benches/servers/cqueues.lua PORT
local cqueues = require'cqueues'
local socket = require'cqueues.socket'
local port = tonumber(arg[1]) or error('usage: cqueues.lua PORT')

local cq = cqueues.new()
local listener = assert(socket.listen{host = '127.0.0.1', port = port, reuseaddr = true, backlog = 1024})
assert(listener:listen())

local function serve(con)
  con:setmode('b', 'bf')  -- binary, fully buffered output flushed once per line
  while true do
    local line = con:read('*l')
    if not line then break end
    con:write(line, '\n')
    if not con:flush() then break end
  end
  con:close()
end

cq:wrap(function()
  for con in listener:clients() do cq:wrap(serve, con) end
end)
io.stderr:write('cqueues ', tostring(cqueues.VERSION), ' echo: 127.0.0.1:', port, '\n')
assert(cq:loop())
