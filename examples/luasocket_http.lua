-- The luapower socketloop documentation's example, as written there: Debian's
-- socket.http, its socket a LuaSocket object wrapped by loop.wrap, getpage running in
-- one loop thread per URL, so the pages download at once.
--
--   socketloop examples/luasocket_http.lua URL [URL...]
--   LUA_CPATH='target/release/lib?.so;;' luajit examples/luasocket_http.lua URL [URL...]
--
-- prints, per URL in the order given, "CODE BYTES URL" (or "error MESSAGE URL"). Needs
-- Debian's lua-socket. Nothing is patched by hand: loading socketloop makes socket.http's
-- protected request yieldable, and loop.wrap registers the socket once connect has made
-- its descriptor (docs/api.md, "Running LuaSocket code in loop threads").

-- The example, verbatim.
local loop = require'socketloop'
local http = require'socket.http'
local function getpage(url)
   local t = {}
   local ok, code, headers = http.request{
      url = url,
      sink = ltn12.sink.table(t),
      create = function()
         return loop.wrap(socket.try(socket.tcp()))
      end,
   }
   assert(ok, code)
   return table.concat(t), headers, code
end
-- The example ends here.

local urls = {...}
if #urls == 0 then
	io.stderr:write('usage: socketloop examples/luasocket_http.lua URL [URL...]\n')
	os.exit(2)
end

local results = {}
for i, url in ipairs(urls) do
	loop.newthread(function()
		local ok, body, _, code = pcall(getpage, url)
		if ok then
			results[i] = ('%s %d %s'):format(tostring(code), #body, url)
		else
			results[i] = ('error %s %s'):format(tostring(body), url)
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
