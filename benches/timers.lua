-- Timer benchmark (not a test): N threads sleeping at once with distinct deadlines,
-- spread over SPREAD seconds; reports whether they woke in deadline order and the
-- lateness of the wake-ups (median, p99, max), with the loop's memory.
--   socketloop benches/timers.lua [N [SPREAD]]     (defaults: 100000 threads, 2 s)
local loop = require'socketloop'

local n = tonumber(arg and arg[1]) or 100000
local spread = tonumber(arg and arg[2]) or 2

local lateness, order = {}, {}
local start = loop.now() + 0.5 -- leave time to create the threads before the first wakes
for i = 1, n do
	-- a fixed permutation of the deadlines, so creation order differs from wake order
	local slot = (i * 7919) % n
	local due = start + spread * slot / n
	loop.newthread(function()
		loop.sleep_until(due)
		lateness[#lateness + 1] = loop.now() - due
		order[#order + 1] = slot
	end)
end
local created = loop.now()
local kb = collectgarbage('count')
loop.start()

local inversions = 0
for i = 2, #order do
	if order[i] < order[i - 1] then inversions = inversions + 1 end
end
table.sort(lateness)
local function pct(p) return lateness[math.max(1, math.ceil(#lateness * p))] * 1000 end
print(('%d sleepers, created in %.3f s, Lua heap %.1f MB while asleep'):format(
	n, created - (start - 0.5), kb / 1024))
print(('woken: %d, out of deadline order: %d'):format(#order, inversions))
print(('lateness ms: median %.3f  p99 %.3f  max %.3f'):format(pct(0.5), pct(0.99), pct(1)))
