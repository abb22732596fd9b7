-- luv (lua-luv, libuv): callbacks, no coroutines. Input is split into lines as Lua
-- strings (what receive('*l') returns) and each batch of lines is written back at once.
-- usage: luajit benches/servers/luv.lua PORT
local uv = require'luv'
local port = tonumber(arg[1]) or error('usage: luv.lua PORT')

local function on_client(client)
  local pending = ''  -- an incomplete line from the previous read
  client:read_start(function(err, chunk)
    if err or not chunk then client:close() return end
    if pending ~= '' then chunk = pending .. chunk end
    local out, pos = {}, 1
    for line, next_pos in chunk:gmatch('([^\n]*)\n()') do
      out[#out + 1] = line
      pos = next_pos
    end
    pending = chunk:sub(pos)
    if #out > 0 then
      out[#out + 1] = ''
      client:write(table.concat(out, '\n'))
    end
  end)
end

local listener = uv.new_tcp()
assert(listener:bind('127.0.0.1', port))
assert(listener:listen(1024, function(err)
  if err then return end
  local client = uv.new_tcp()
  if listener:accept(client) then on_client(client) else client:close() end
end))
io.stderr:write('luv (libuv ', uv.version_string(), ') echo: 127.0.0.1:', port, '\n')
uv.run()
