-- Name lookups per second through the resolver pool (loop.resolve) for /etc/hosts names,
-- beside the same lookups made on the loop thread itself (getaddrinfo blocking the loop,
-- as connects did before the pool), in one run.
-- usage: socketloop benches/resolve_bench.lua [COUNT]
local loop = require'socketloop'
local core = require'socketloop.core'
local count = tonumber(arg[1]) or 20000
local NAME = 'localhost'

local function pool(threads)
	local left = count
	local t0 = loop.now()
	for _ = 1, threads do
		loop.newthread(function()
			while left > 0 do
				left = left - 1
				assert(loop.resolve(NAME))
			end
		end)
	end
	loop.start()
	return count / (loop.now() - t0)
end

local function inline()
	local t0 = loop.now()
	for _ = 1, count do assert(core.lookup_blocking(NAME)) end
	return count / (loop.now() - t0)
end

local base = inline()
print(('lookups of %q (/etc/hosts), %d each'):format(NAME, count))
print(('%-36s %12s %8s'):format('how', 'lookups/s', 'ratio'))
print(('%-36s %12.0f %8s'):format('getaddrinfo on the loop thread', base, '1.00x'))
for _, threads in ipairs{1, 4, 16} do
	local r = pool(threads)
	print(('%-36s %12.0f %7.2fx'):format(('loop.resolve, %d loop threads asking'):format(threads), r, r / base))
end
