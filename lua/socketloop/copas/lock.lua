-- socketloop.copas.lock (copas.lock): copas's lock on loop.lock (socketloop.sync).
-- Re-entrant unless made with not_reentrant; get returns the seconds it waited, or nil,
-- err, waited; destroy wakes every waiting thread with 'destroyed', after which every
-- method returns nil, 'destroyed'.

local loop = require'socketloop'
-- The scheduler: internal, handed to the loop's modules by src/lua/embedded.rs.
local S = assert(select(2, ...), 'loaded by socketloop itself').scheduler

local running = coroutine.running

local DEFAULT_TIMEOUT = 10

local lock = {}
lock.__index = lock

local function gettime() return loop.now() end

local function destroyed() return nil, 'destroyed' end
local destroyed_mt = {__index = function() return destroyed end}

function lock.new(seconds, not_reentrant)
	local timeout = tonumber(seconds or DEFAULT_TIMEOUT) or -1
	if timeout < 0 or timeout ~= timeout then
		error('expected timeout (1st argument) to be a number greater than or equal to 0, got: ' .. tostring(seconds), 2)
	end
	return setmetatable({
		timeout = timeout,
		not_reentrant = not_reentrant,
		inner = loop.lock(),
		owner = nil,
		depth = 0,
		waiting = setmetatable({}, {__mode = 'k'}),
	}, lock)
end

function lock:get(timeout)
	local co = running()
	timeout = timeout or self.timeout
	if self.owner == co and co ~= nil then
		if not self.not_reentrant then
			self.depth = self.depth + 1
			return 0
		end
		-- Waiting for itself: it times out, as in copas.
		if timeout == 0 then return nil, 'timeout', 0 end
		local started = gettime()
		local _, why = loop.sleep(timeout)
		return nil, why or 'timeout', gettime() - started
	end
	if timeout == 0 and self.owner ~= nil then
		return nil, 'timeout', 0
	end
	local started = gettime()
	local free = self.owner == nil
	self.waiting[co] = true
	local ok, err = self.inner:acquire(timeout)
	self.waiting[co] = nil
	if not ok then
		return nil, err, gettime() - started
	end
	self.owner, self.depth = co, 1
	return free and 0 or gettime() - started
end

function lock:release()
	if running() ~= self.owner then
		return nil, 'cannot release a lock not owned'
	end
	self.depth = self.depth - 1
	if self.depth > 0 then return true end
	self.owner = nil
	self.inner:release()
	return true
end

function lock:destroy()
	self.destroyed = true
	for co in pairs(self.waiting) do
		pcall(S.cancel, co, 'destroyed')
	end
	self.waiting = {}
	setmetatable(self, destroyed_mt)
	return true
end

return lock
