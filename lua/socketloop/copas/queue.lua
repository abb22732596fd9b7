-- socketloop.copas.queue (copas.queue): copas's queue on loop.queue (socketloop.sync):
-- items of any type (nil included), workers, stop/finish/destroy.

local loop = require'socketloop'
local copas = require'socketloop.copas'

local NIL = {}   -- stands for a nil item inside the loop.queue, which holds no nils
local DEFAULT_TIMEOUT = 10

local Queue = {}
Queue.__index = Queue

local function destroyed() return nil, 'destroyed' end
local destroyed_mt = {__index = function() return destroyed end}

local count = 0

function Queue.new(opts)
	opts = opts or {}
	count = count + 1
	return setmetatable({
		name = opts.name or ('copas_queue_' .. count),
		q = loop.queue(),
		workers = setmetatable({}, {__mode = 'k'}),
		worker_id = 0,
		stopping = false,
		done = loop.event(),  -- set once destroyed with no worker left
	}, Queue)
end

function Queue:push(item)
	if self.stopping then return nil, 'stopping' end
	if item == nil then item = NIL end
	return self.q:push(item)
end

function Queue:pop(timeout)
	timeout = timeout or DEFAULT_TIMEOUT
	local item, err = self.q:pop(timeout)
	if getmetatable(self) ~= Queue then return nil, 'destroyed' end
	if err then
		if err == 'closed' then return nil, 'destroyed' end
		return nil, err
	end
	if self.stopping and self.q:len() == 0 then
		self:destroy()
	end
	if item == NIL then return nil end
	return item
end

function Queue:get_size()
	return self.q:len()
end

function Queue:stop()
	if not self.stopping then
		self.stopping = true
		if self.q:len() == 0 then self:destroy() end
	end
	return true
end

-- Stops the queue and waits until it ran empty and its workers ended.
function Queue:finish(timeout, no_destroy_on_timeout)
	local done = self.done
	self:stop()
	local ok, err = done:wait(timeout or DEFAULT_TIMEOUT)
	if not ok then
		if not no_destroy_on_timeout and getmetatable(self) == Queue then self:destroy() end
		return nil, err
	end
	return true
end

local function check_done(self, done)
	if next(self.workers) == nil then done:set() end
end

function Queue:destroy()
	local done, workers = self.done, self.workers
	self.q:close()
	setmetatable(self, destroyed_mt)
	if next(workers) == nil then done:set() end
	return true
end

function Queue:add_worker(worker)
	assert(type(worker) == 'function', 'expected worker to be a function')
	self.worker_id = self.worker_id + 1
	local done, workers = self.done, self.workers
	local co
	co = copas.addnamedthread(self.name .. ':worker_' .. self.worker_id, function()
		while true do
			local item, err = self:pop(math.huge)
			if err then break end
			worker(item)
		end
		workers[co] = nil
		if getmetatable(self) ~= Queue then check_done(self, done) end
	end)
	workers[co] = true
	return co
end

function Queue:get_workers()
	local list = {}
	for co in pairs(self.workers) do
		if coroutine.status(co) ~= 'dead' then list[#list + 1] = co end
	end
	return list
end

return Queue
