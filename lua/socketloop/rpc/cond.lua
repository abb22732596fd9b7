-- A one-shot rendezvous: one thread waits until some other code hands it up to two
-- values (an rpc answer, a free sequence number, a connection's turn). Shared by
-- socketloop.rpc and socketloop.tango.
--
-- In a loop thread, wait() suspends just that thread; outside one (a plain script under
-- stock luajit), it drives the loop with loop.step() until the values arrive, as the
-- blocking socket calls of an asocket would wait in poll(2).

local loop = require'socketloop'

local Cond = {}
Cond.__index = Cond

function Cond.new()
	return setmetatable({done = false}, Cond)
end

-- Waits for signal(a, b) and returns a, b. Returns nothing if the loop ran out of work
-- first (nothing could ever signal), which callers treat as a lost connection.
function Cond:wait()
	if not self.done then
		local co = loop.current()
		if co then
			self.thread = co
			loop.suspend()
		else
			while not self.done and loop.step() do end
		end
	end
	return self.a, self.b
end

-- Hands a, b to the waiter, resuming it at once if it is suspended. Only the first
-- signal counts.
function Cond:signal(a, b)
	if self.done then return end
	self.done, self.a, self.b = true, a, b
	local co = self.thread
	if co then
		self.thread = nil
		loop.resume(co)
	end
end

return Cond
