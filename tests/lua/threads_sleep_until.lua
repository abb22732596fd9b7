-- loop.sleep_until: threads parked on absolute deadlines (created in another order) wake
-- in deadline order, never before their deadline; outside a loop thread it sleeps.
local loop = require'socketloop'
local T = require'testlib'

T.run('sleepers wake in deadline order', function()
	local n, woke, early = 2000, {}, 0
	local base = loop.now() + 0.05
	for i = 1, n do
		local slot = (i * 7919) % n -- a permutation: creation order is not wake order
		local due = base + slot * 0.00005
		loop.newthread(function()
			loop.sleep_until(due)
			if loop.now() < due then early = early + 1 end
			woke[#woke + 1] = slot
		end)
	end
	while #woke < n do loop.sleep(0.01) end
	local inversions = 0
	for i = 2, n do
		if woke[i] < woke[i - 1] then inversions = inversions + 1 end
	end
	T.eq(inversions, 0, 'wake-ups out of deadline order')
	T.eq(early, 0, 'wake-ups before the deadline')
	loop.sleep_until(loop.now() - 1) -- a deadline in the past returns at once
	T.raises("bad argument #1 to 'sleep_until'", loop.sleep_until, 'x')
end)

local co = coroutine.create(function()
	local t = loop.now() + 0.02
	loop.sleep_until(t)
	return loop.now() >= t
end)
local ok, reached = coroutine.resume(co)
T.ok(ok and reached, 'outside a loop thread, sleep_until blocks until the deadline')
T.finish()
