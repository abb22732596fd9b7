-- The long run of the API fuzz (tests/lua/lib/api_fuzz.lua): random sequences of the
-- public API against loopback sockets, seed after seed, for FUZZ_SECONDS (default 600),
-- checking after each seed that every thread ended and loop.stats() is back to zero.
-- Run by scripts/fuzz_api.sh; prints `FIGURES fuzz_api key=value ...` at the end and
-- exits 1 on any problem (the seed is printed, so a failure replays exactly).
local loop = require'socketloop'
local F = require'api_fuzz'

local seconds = tonumber(os.getenv('FUZZ_SECONDS') or '') or 600
local ops = tonumber(os.getenv('FUZZ_OPS') or '') or 400
local seed = tonumber(os.getenv('FUZZ_SEED') or '') or 1

local failed = false
local totals = {seeds = 0, ops = 0, threads = 0, sockets = 0, closes = 0, finalizers = 0, errors = 0}
local started = loop.now()
loop.newthread(function()
	while loop.now() - started < seconds do
		local figures, problems = F.run(seed, ops)
		local stats, idle_problems = F.check_idle()
		for _, p in ipairs(idle_problems) do problems[#problems + 1] = p end
		for k, v in pairs(figures) do totals[k] = totals[k] + v end
		totals.seeds = totals.seeds + 1
		if #problems > 0 then
			failed = true
			for _, p in ipairs(problems) do io.stderr:write('seed ', seed, ': ', p, '\n') end
			break
		end
		if totals.seeds % 10 == 0 then
			io.stderr:write(('%d seeds, %d ops, %.0f s, pending %d, registrations %d\n'):format(
				totals.seeds, totals.ops, loop.now() - started, stats.pending, stats.registrations))
		end
		seed = seed + 1
	end
end)
loop.start()
local rss
do
	local f = io.open('/proc/self/status')
	if f then rss = tonumber(f:read('*a'):match('VmHWM:%s*(%d+)')) f:close() end
end
local parts = {'FIGURES fuzz_api', 'seconds=' .. math.floor(loop.now() - started),
	'failed=' .. tostring(failed), 'last_seed=' .. seed, 'peak_rss_kib=' .. tostring(rss)}
for _, k in ipairs{'seeds', 'ops', 'threads', 'sockets', 'closes', 'finalizers', 'errors'} do
	parts[#parts + 1] = k .. '=' .. totals[k]
end
print(table.concat(parts, ' '))
os.exit(failed and 1 or 0)
