-- Where the bytes of an idle connection go (issue 19's accounting), measured in one
-- runner process:
--
--   ulimit -n 20000; target/release/socketloop benches/idle_accounting.lua [N]
--
-- Each part is made N times (N = 10,000 by default) in a fresh process (this script run
-- again with the part's name) and kept alive; its cost is the growth of the Lua heap
-- (collectgarbage'count' after a full collection) and of the process's RSS, divided by N:
--   coroutine  coroutine.create(f), never run: the lua_State and its initial stack
--   thread     a loop thread made by loop.newthread, parked (loop.suspend) five calls
--              deep: the coroutine, its stack doubled (its frames and the 20 slots of a
--              C call do not fit the initial 48), the scheduler's records. A connection's
--              thread parks shallower and keeps the initial stack (see docs/performance.md)
--   userdata   core.tcp(): the socket userdata (TcpSocket) and its reactor registration
--              (no descriptor yet, so nothing in the kernel)
--   asocket    A.wrap(core.tcp()): the above and the asocket table (a master socket's,
--              which keeps its class in a hash part an accepted one does not have)
--   echo       the whole: N connections to the echo server of benches/servers/socketloop.lua
--              in this process, from a client process, each echoed once and then idle
-- The echo figure less the asocket part is what a connection's thread costs (its
-- coroutine, the scheduler's records of it, the parked-thread slots and anchor) plus
-- what its descriptor adds (its registration with epoll is kernel memory, not in RSS).
-- Prints a Markdown table. Traffic to 127.0.0.1 only; the client process is stopped by
-- its PID.
local loop = require'socketloop'
local core = require'socketloop.core'
local A = require'socketloop.asocket'

local N = tonumber(arg and arg[1]) or 10000
local PART = arg and arg[2]
local PAGE = 4096
local bin = os.getenv('SOCKETLOOP_BIN') or 'target/release/socketloop'

if not PART then
	print(('| part (%d of each) | Lua heap, B each | RSS, B each |'):format(N))
	print('|---|---:|---:|')
	for _, part in ipairs{'coroutine', 'thread', 'userdata', 'asocket', 'echo'} do
		local p = assert(io.popen(('%s %s %d %s'):format(bin, arg[0], N, part)))
		io.write(p:read('*a'))
		p:close()
	end
	return
end

local function heap()
	collectgarbage('collect')
	collectgarbage('collect')
	return collectgarbage('count') * 1024
end

local function rss()
	local f = assert(io.open('/proc/self/statm'))
	local pages = f:read('*a'):match('^%d+ (%d+)')
	f:close()
	return tonumber(pages) * PAGE
end


local function report(name, h0, r0, h1, r1)
	print(('| %s | %.0f | %.0f |'):format(name, (h1 - h0) / N, (r1 - r0) / N))
end

local function measure(name, make)
	local keep = {}
	for i = 1, N do keep[i] = false end -- the holder's array, before the baseline
	local h0, r0 = heap(), rss()
	make(keep)
	report(name, h0, r0, heap(), rss())
end

local function f() end
if PART == 'coroutine' then
	return measure('coroutine (lua_State, initial stack)', function(keep)
		for i = 1, N do keep[i] = coroutine.create(f) end
	end)
elseif PART == 'userdata' then
	return measure('socket userdata (TcpSocket) + registration', function(keep)
		for i = 1, N do keep[i] = core.tcp() end
	end)
elseif PART == 'asocket' then
	return measure('asocket table + the above', function(keep)
		for i = 1, N do keep[i] = A.wrap(core.tcp()) end
	end)
end

-- A loop thread parked five calls deep in loop.suspend.
local threads = {}
local function park(depth)
	if depth > 0 then return park(depth - 1), nil end
	threads[#threads + 1] = loop.current()
	loop.suspend()
end
if PART == 'thread' then
	measure('loop thread (newthread) parked 5 calls deep', function()
		for _ = 1, N do loop.newthread(park, 5) end
	end)
	for i = 1, #threads do loop.resume(threads[i]) end
	return
end

-- The echo server with N idle connections from another process.
local echoed = 0
local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
	while true do
		local line = skt:receive('*l')
		if not line or not skt:send(line .. '\n') then break end
		echoed = echoed + 1
	end
	skt:close()
end))
local _, port = server:getsockname()
local pidfile = os.tmpname()
local client = ([[local loop = require'socketloop'
local t = {}
for i = 1, %d do
  t[i] = assert(loop.connect('127.0.0.1', %d))
  assert(t[i]:send('x\n'))
  assert(t[i]:receive('*l'))
end
loop.sleep(120)]]):format(N, port)
local script = os.tmpname()
local sf = assert(io.open(script, 'w'))
sf:write(client)
sf:close()
local h0, r0 = heap(), rss()
os.execute(("sh -c 'echo $$ > %s; exec timeout 150 %s %s' >/dev/null 2>&1 &"):format(pidfile, bin, script))
local t0 = loop.now()
while echoed < N and loop.now() - t0 < 60 do loop.sleep(0.05) end
loop.sleep(0.5)
local h1, r1 = heap(), rss()
local f = io.open(pidfile)
local pid = f and tonumber(f:read('*a'))
if f then f:close() end
os.remove(pidfile)
os.remove(script)
if pid then os.execute('kill ' .. pid) end
server:close()
assert(echoed == N, ('only %d of %d connections echoed'):format(echoed, N))
report('idle echo connection (all of it)', h0, r0, h1, r1)
