-- Queue hand-off benchmark (not a test): items through a socketloop queue between two
-- loop threads, or through copas 4's copas.queue (benches/queue.sh runs both).
--
--   socketloop benches/queue.lua [N]            socketloop (also: luajit with the module)
--   luajit benches/queue.lua [N] copas          copas.queue (copas 4.x on LUA_PATH)
--
-- Prints one line per run, "name items/s": N items from a producer thread to a consumer
-- thread through a queue of capacity 1, 64 and unbounded (copas's queue is unbounded
-- only: no capacity), and "ping-pong": N/2 round trips between two threads over two
-- unbounded queues, where every item is a hand-off to a thread that is parked waiting
-- for it (the figure is items, two per round trip).

local N = tonumber(arg and arg[1]) or 2000000
local which = arg and arg[2] or 'socketloop'

local clock = os.clock -- CPU time of this process: one thread, so it is the loop's

local newqueue, spawn, run
if which == 'copas' then
	local copas = require'copas'
	local Queue = require'copas.queue'
	newqueue = function() return Queue.new() end -- no capacity: copas queues are unbounded
	spawn = function(f) copas.addthread(f) end
	run = function() copas.loop() end
else
	local loop = require'socketloop'
	newqueue = function(capacity) return loop.queue(capacity) end
	spawn = function(f) loop.newthread(f) end
	run = function() loop.start() end
end

local function report(name, items, seconds)
	io.stdout:write(('%-12s %12.0f\n'):format(name, items / seconds))
	io.stdout:flush()
end

-- N items from a producer to a consumer.
local function one_way(name, capacity)
	local q = newqueue(capacity)
	local got, t0 = 0, clock()
	spawn(function()
		for i = 1, N do q:push(i) end
	end)
	spawn(function()
		for _ = 1, N do
			if q:pop() then got = got + 1 end
		end
	end)
	run()
	assert(got == N, name .. ': items lost')
	report(name, N, clock() - t0)
end

-- N/2 round trips: every item wakes a parked thread.
local function ping_pong()
	local there, back = newqueue(), newqueue()
	local rounds, done = math.floor(N / 2), 0
	local t0 = clock()
	spawn(function()
		for _ = 1, rounds do
			local v = there:pop()
			back:push(v)
		end
	end)
	spawn(function()
		for i = 1, rounds do
			there:push(i)
			if back:pop() == i then done = done + 1 end
		end
	end)
	run()
	assert(done == rounds, 'ping-pong: items lost')
	report('ping-pong', 2 * rounds, clock() - t0)
end

if which ~= 'copas' then
	one_way('capacity-1', 1)
	one_way('capacity-64', 64)
end
one_way('unbounded', nil)
ping_pong()
