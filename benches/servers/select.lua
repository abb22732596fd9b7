-- Plain LuaSocket: one coroutine per connection parked on socket.select().
-- receive/send are tried first; a coroutine waits only when LuaSocket says 'timeout'.
-- select() is bound by FD_SETSIZE (1024 descriptors).
-- usage: luajit benches/servers/select.lua PORT
local socket = require'socket'
local port = tonumber(arg[1]) or error('usage: select.lua PORT')

-- socket.select takes arrays; keep each socket's index beside it for O(1) removal
local function socket_set()
  local set, index = {}, {}
  return set, function(s)
    if not index[s] then set[#set + 1] = s; index[s] = #set end
  end, function(s)
    local i = index[s]
    if not i then return end
    local last = set[#set]
    set[i], index[last] = last, i
    set[#set], index[s] = nil, nil
  end
end
local readers, want_read, unwant_read = socket_set()
local writers, want_write, unwant_write = socket_set()
local parked = {}  -- socket -> coroutine

local function park(want, s)
  want(s)
  parked[s] = coroutine.running()
  coroutine.yield()
end

local function wake(unwant, s)
  unwant(s)
  local co = parked[s]
  parked[s] = nil
  if co then
    local ok, err = coroutine.resume(co)
    if not ok then io.stderr:write(tostring(err), '\n') end
  end
end

local function receive_line(s)
  local partial
  while true do
    local line, err, part = s:receive('*l', partial)
    if line then return line end
    if err ~= 'timeout' then return nil, err end
    partial = part
    park(want_read, s)
  end
end

local function send_all(s, data)
  local from = 1
  while true do
    local last, err, sent = s:send(data, from)
    if last then return last end
    if err ~= 'timeout' then return nil, err end
    from = sent + 1
    park(want_write, s)
  end
end

local function serve(s)
  while true do
    local line = receive_line(s)
    if not line or not send_all(s, line .. '\n') then break end
  end
  s:close()
end

local listener = assert(socket.bind('127.0.0.1', port, 1024))
listener:settimeout(0)
want_read(listener)
io.stderr:write('LuaSocket select echo: 127.0.0.1:', port, '\n')
while true do
  local r, w = socket.select(readers, writers)
  for _, s in ipairs(w) do wake(unwant_write, s) end
  for _, s in ipairs(r) do
    if s == listener then
      for _ = 1, 1000 do  -- take what the accept queue holds
        local c = listener:accept()
        if not c then break end
        c:settimeout(0)
        local co = coroutine.create(serve)
        local ok, err = coroutine.resume(co, c)
        if not ok then io.stderr:write(tostring(err), '\n') end
      end
    else
      wake(unwant_read, s)
    end
  end
end
