-- A bounded, deterministic fuzz of the public API (tests/lua/lib/api_fuzz.lua): a few
-- seeds of random operations on loopback sockets, timers, threads, coro threads, closes
-- from other threads and finalizers that call back in. The process survives, every
-- thread ends, and loop.stats() is back to zero. scripts/fuzz_api.sh runs it for longer.
local T = require'testlib'
local F = require'api_fuzz'

local SEEDS, OPS = {1, 2, 3, 4}, 400

T.run('random API sequences', function()
	for _, seed in ipairs(SEEDS) do
		local figures, problems = F.run(seed, OPS)
		for _, p in ipairs(problems) do T.ok(false, 'seed ' .. seed .. ': ' .. p) end
		T.eq(figures.ops, OPS, 'seed ' .. seed .. ': every operation played')
	end
end)
local stats, problems = F.check_idle()
for _, p in ipairs(problems) do T.ok(false, p) end
T.eq(stats.pending, 0, 'nothing parked')
T.eq(stats.registrations, 0, 'nothing registered')
T.finish()
