-- An unchanged LuaSocket library serving many loop threads: Debian's lua-redis
-- (redis-lua), written for LuaSocket years ago, on socketloop.socket. Each of N threads
-- opens its own connection and does M SET/GET pairs; while one waits for redis, the
-- others run.
--
--   socketloop --luasocket examples/redis_many.lua [PORT [N [M]]]
--   LUA_CPATH='target/release/lib?.so;;' luajit examples/redis_many.lua [PORT [N [M]]]
--
-- needs a redis-server on 127.0.0.1:PORT (default 6379) and lua-redis; prints how many
-- values were read back right and how long it took.

local loop = require'socketloop'
loop.luasocket() -- the runner's --luasocket does the same; a second call changes nothing
local redis = require'redis'

local port = tonumber(arg[1]) or 6379
local threads = tonumber(arg[2]) or 100
local ops = tonumber(arg[3]) or 100

local right, failed = 0, 0
local started = loop.now()
for t = 1, threads do
	loop.newthread(function()
		local ok, err = pcall(function()
			local client = redis.connect('127.0.0.1', port)
			for i = 1, ops do
				local key = ('redis_many:%d:%d'):format(t, i)
				client:set(key, t * i)
				if client:get(key) == tostring(t * i) then right = right + 1 end
				client:del(key)
			end
			client:quit()
		end)
		if not ok then
			failed = failed + 1
			io.stderr:write('thread ', t, ': ', tostring(err), '\n')
		end
	end)
end
loop.start()

print(('%d of %d values read back right, %d threads failed, %.3f s'):format(
	right, threads * ops, failed, loop.now() - started))
if right ~= threads * ops then os.exit(1) end
