-- LuaSocket's own HTTP client, socket.http, driven by the loop: each request's socket
-- is a LuaSocket TCP object wrapped by loop.wrap, so socket.http's sequential code parks
-- its loop thread where it would block, and several pages download at once.
--
--   socketloop examples/luasocket_http.lua URL [URL...]
--
-- fetches every URL at once (one loop thread each) and prints, per URL, in the order
-- given: "CODE BYTES URL" (or "error MESSAGE URL"). Needs Debian's lua-socket.
--
-- Two things to know. LuaSocket's socket.protect (which wraps socket.http.request) is
-- C code calling lua_pcall, and a coroutine cannot yield across it under LuaJIT. So
-- protect is redefined in Lua, with pcall (which LuaJIT lets yield), before socket.http
-- is loaded, as copas does. And LuaSocket 3's socket.tcp() makes no descriptor until
-- it connects, so there is nothing for loop.wrap to register yet: socket.tcp4() (or
-- tcp6) makes it at once.

local loop = require'socketloop'
local socket = require'socket'

function socket.protect(f)
	local function unwrap(ok, ...)
		if ok then return ... end
		local err = ...
		-- socket.try raises {message}; anything else is a real error.
		if type(err) == 'table' then return nil, err[1] end
		error(err, 0)
	end
	return function(...)
		return unwrap(pcall(f, ...))
	end
end

local http = require'socket.http'
local ltn12 = require'ltn12'

local urls = {...}
if #urls == 0 then
	io.stderr:write('usage: socketloop examples/luasocket_http.lua URL [URL...]\n')
	os.exit(2)
end

local results = {}
for i, url in ipairs(urls) do
	loop.newthread(function()
		local t = {}
		local ok, code = http.request{
			url = url,
			sink = ltn12.sink.table(t),
			create = function() return loop.wrap(socket.try(socket.tcp4())) end,
		}
		if ok then
			results[i] = ('%s %d %s'):format(tostring(code), #table.concat(t), url)
		else
			results[i] = ('error %s %s'):format(tostring(code), url)
		end
	end)
end
loop.start()

local failed = 0
for i, url in ipairs(urls) do
	local line = results[i] or ('error unfinished ' .. url)
	if line:sub(1, 5) == 'error' then failed = failed + 1 end
	print(line)
end
io.stdout:flush()
if failed > 0 then os.exit(1) end
