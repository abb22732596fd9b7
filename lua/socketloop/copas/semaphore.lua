-- socketloop.copas.semaphore (copas.semaphore): copas's counting semaphore, first come
-- first served, on the scheduler's wait lists (S.park, as loop.semaphore): a take may
-- ask for several resources, and waits (in turn) until that many are there.

-- The scheduler: internal, handed to the loop's modules by src/lua/embedded.rs.
local S = assert(select(2, ...), 'loaded by socketloop itself').scheduler

local DEFAULT_TIMEOUT = 10

local semaphore = {}
semaphore.__index = semaphore

local function destroyed() return nil, 'destroyed' end
local destroyed_mt = {__index = function() return destroyed end}

function semaphore.new(max, start, seconds)
	local timeout = tonumber(seconds or DEFAULT_TIMEOUT) or -1
	if timeout < 0 or timeout ~= timeout then
		error('expected timeout (2nd argument) to be a number greater than or equal to 0, got: ' .. tostring(seconds), 2)
	end
	if type(max) ~= 'number' or max < 1 then
		error('expected max resources (1st argument) to be a number greater than 0, got: ' .. tostring(max), 2)
	end
	local self = setmetatable({
		count = start or 0,
		max = max,
		timeout = timeout,
		waiters = S.waitlist('copas semaphore'),
	}, semaphore)
	if self.count > max then self.count = max end
	return self
end

-- The first thread still waiting, without taking it.
local function first(wl)
	for i = wl.first, wl.last do
		local e = wl[i]
		if e and e.co then return e end
	end
end

-- Hands resources to the waiting threads in turn while the first one's request fits.
local function serve(self)
	while self.waiters.n > 0 do
		local e = first(self.waiters)
		if not e or e.v > self.count then return end
		S.take(self.waiters)
		self.count = self.count - e.v
		S.ready(e.co, true)
	end
end

function semaphore:give(given)
	given = given or 1
	local err
	self.count = self.count + given
	if self.count > self.max then
		self.count = self.max
		err = 'too many'
	end
	serve(self)
	if err then return nil, err end
	return true
end

function semaphore:take(requested, timeout)
	requested = requested or 1
	if requested > self.max then return nil, 'too many' end
	if self.waiters.n == 0 and self.count >= requested then
		self.count = self.count - requested
		return true
	end
	timeout = timeout or self.timeout
	if timeout == 0 then return nil, 'timeout' end
	if timeout == math.huge then timeout = nil end
	local ok, why = S.park(self.waiters, timeout, requested, 'take')
	if ok then return true end
	-- The first in line leaving may let the next ones through.
	if getmetatable(self) == semaphore then serve(self) end
	return nil, why
end

function semaphore:get_count()
	return self.count
end

function semaphore:get_wait()
	local wanted = 0
	local wl = self.waiters
	for i = wl.first, wl.last do
		local e = wl[i]
		if e and e.co then wanted = wanted + e.v end
	end
	return wanted - self.count
end

function semaphore:destroy()
	S.wakeall(self.waiters, false, 'destroyed')
	setmetatable(self, destroyed_mt)
	return true
end

return semaphore
